"""Benchmark train_Sony.py's input path against the official code's, side by side in one run.

The baseline ("naive") is written here and does what the official train_Sony.py does: decode each
pair with rawpy on first use inside the step loop, keep float32 images in RAM (amplified input and
ground truth), cut crops and flips with numpy, feed them with feed_dict. The project's path is
train_Sony.py itself: decoded-raw cache, memory-mapped crops, tf.data.

    python3 scripts/make_dataset.py --data_dir=/tmp/train_bench_full/data \\
        --list_dir=/tmp/train_bench_full/data \\
        --height=2848 --width=4256 --train_scenes=16 --test_scenes=0 --val_scenes=0 --bursts=1
    python3 scripts/bench/bench_input_pipeline.py   # defaults: /tmp/train_bench_full/{data,work}

Sections (run all by default):
  a  steady-state input patches per second at --ps (nothing trains: a reduce_sum consumes them)
  b  peak RSS of a one-epoch training run with N = --sizes pairs (separate processes)
  c  same runs, warm cache: launch -> first training step, and input wait over the first epoch
  d  train-step time with the tf.data pipeline vs the same graph fed pre-made arrays
  e  the project's patches per second with 1, 2, ... crop threads (--crop_threads), alternating
Timings on a shared machine are noisy: the two paths alternate within each section.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
import cli  # noqa: E402
import npu_config  # noqa: E402
import pipeline  # noqa: E402
import raw_cache  # noqa: E402
import raw_io  # noqa: E402
import sid_lists  # noqa: E402
import train_Sony  # noqa: E402

RESULT_PREFIX = 'BENCH '  # child processes report one JSON line with this prefix
WARMUP = 5                # patches or steps discarded before timing
ROUNDS = 3                # alternating rounds per path in (a) and (d)


# ---------------------------------------------------------------- the official code's path

class NaiveData(object):
    """The official loader: rawpy decode on first use, float32 images kept in RAM."""

    def __init__(self, pairs):
        self.pairs = pairs
        self.inputs = {}   # pair -> amplified float32 [1, H/2, W/2, 4] (unclipped, as official)
        self.targets = {}  # long path -> float32 [1, H, W, 3]

    def load(self, i):
        pair = self.pairs[i]
        if i not in self.inputs:
            ratio = sid_lists.exposure_ratio(pair.short, pair[1])
            self.inputs[i] = raw_io.pack_raw(pair.short)[None] * np.float32(ratio)
        if pair[1] not in self.targets:
            self.targets[pair[1]] = raw_io.read_ground_truth(pair[1])[None]
        return self.inputs[i], self.targets[pair[1]]

    def patch(self, i, ps, rng):
        """Official crop and augmentation: random position, flip rows, flip columns, transpose."""
        inp, gt = self.load(i)
        h, w = inp.shape[1:3]
        xx, yy = rng.randint(0, w - ps), rng.randint(0, h - ps)
        a = inp[:, yy:yy + ps, xx:xx + ps, :]
        b = gt[:, yy * 2:yy * 2 + ps * 2, xx * 2:xx * 2 + ps * 2, :]
        if rng.randint(2) == 1:
            a, b = np.flip(a, axis=1), np.flip(b, axis=1)
        if rng.randint(2) == 1:
            a, b = np.flip(a, axis=2), np.flip(b, axis=2)
        if rng.randint(2) == 1:
            a, b = np.transpose(a, (0, 2, 1, 3)), np.transpose(b, (0, 2, 1, 3))
        return np.minimum(a, 1.0), b


# ---------------------------------------------------------------- helpers

def tf_v1():
    tf = cli.import_tensorflow()
    tf.logging.set_verbosity(tf.logging.ERROR)
    return tf


def project_data(pairs, data_dir, ps):
    raws = [(p.short, 'input') for p in pairs] + [(p[1], 'gt') for p in pairs]
    entries = raw_cache.build_cache(raws, os.path.join(data_dir, 'cache'), data_dir, progress=False)
    data = pipeline.CachedPairs(pairs, entries)
    scenes = pipeline.group_scenes(pairs)
    shapes = data.check_shapes(range(len(pairs)), ps)

    def crops():
        epoch = 1
        while True:
            for crop in pipeline.epoch_crops(scenes, shapes, ps, len(scenes),
                                             pipeline.epoch_rng(0, epoch, 0)):
                yield crop
            epoch += 1
    return data, crops


def rate(fn, count):
    for _ in range(WARMUP):
        fn()
    start = time.time()
    for _ in range(count):
        fn()
    return count / (time.time() - start)


def subset_list(list_path, n, out_path):
    with open(list_path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()][:n]
    if len(lines) < n:
        raise cli.SidError('%s: has %d pairs, the benchmark needs %d'
                           % (list_path, len(lines), n))
    sid_lists.write_list(lines, out_path)
    return out_path


def run_child(cmd, log_path):
    """Run a process to completion: (stdout lines with arrival times, wall s, peak RSS GB)."""
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, universal_newlines=True,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT))
        lines = [(time.time() - start, line.rstrip('\n')) for line in proc.stdout]
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
    if proc.returncode:
        raise cli.SidError('%s failed (exit %d), see %s' % (cmd[1], proc.returncode, log_path))
    return lines, time.time() - start, usage.ru_maxrss / 1e6  # kB -> GB


# ---------------------------------------------------------------- (a) patches per second

def bench_rate(pairs, data_dir, ps, count):
    tf = tf_v1()
    naive = NaiveData(pairs)
    for i in range(len(pairs)):
        naive.load(i)  # steady state: everything decoded
    data, crops = project_data(pairs, data_dir, ps)
    results = {'naive': [], 'project': []}
    with tf.Graph().as_default():
        in_ph = tf.placeholder(tf.float32, [1, ps, ps, 4])
        gt_ph = tf.placeholder(tf.float32, [1, 2 * ps, 2 * ps, 3])
        naive_sum = tf.reduce_sum(in_ph) + tf.reduce_sum(gt_ph)
        batch = pipeline.input_pipeline(data, crops, ps, 1, npu_config.Distribution().cores())
        project_sum = tf.reduce_sum(batch[0]) + tf.reduce_sum(batch[1])
        rng = np.random.RandomState(0)
        with tf.Session() as sess:
            def naive_step():
                a, b = naive.patch(rng.randint(len(pairs)), ps, rng)
                sess.run(naive_sum, {in_ph: a, gt_ph: b})

            for _ in range(ROUNDS):
                results['naive'].append(rate(naive_step, count))
                results['project'].append(rate(lambda: sess.run(project_sum), count))
    return dict((k, float(np.median(v))) for k, v in results.items())


def bench_threads(pairs, data_dir, ps, count, threads):
    """Patches/s of pipeline.input_pipeline with each crop-thread count, rounds alternating."""
    tf = tf_v1()
    data, crops = project_data(pairs, data_dir, ps)
    results = dict((n, []) for n in threads)
    with tf.Graph().as_default():
        sums = {}
        for n in threads:
            batch = pipeline.input_pipeline(data, crops, ps, 1, n)
            sums[n] = tf.reduce_sum(batch[0]) + tf.reduce_sum(batch[1])
        with tf.Session() as sess:
            for _ in range(ROUNDS):
                for n in threads:
                    results[n].append(rate(lambda: sess.run(sums[n]), count))
    return dict((n, float(np.median(v))) for n, v in results.items())


# ---------------------------------------------------------------- (b, c) training runs

def naive_train(list_path, data_dir, ps, launched):
    """One epoch of the official training loop; reports first-step time and input wait."""
    import network
    tf = tf_v1()
    pairs = sid_lists.read_list(list_path, data_dir)
    scenes = pipeline.group_scenes(pairs)
    in_ph = tf.placeholder(tf.float32, [None, None, None, 4])
    gt_ph = tf.placeholder(tf.float32, [None, None, None, 3])
    loss = tf.reduce_mean(tf.abs(network.unet(in_ph) - gt_ph))
    train_op = tf.train.AdamOptimizer(train_Sony.LEARNING_RATE).minimize(loss)
    data, rng, waited, first = NaiveData(pairs), np.random.RandomState(0), 0.0, None
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        step = sess.make_callable(train_op, [in_ph, gt_ph])  # optimise the graph before step 1
        for k in rng.permutation(len(scenes)):
            t0 = time.time()
            members = list(scenes.values())[k]
            a, b = data.patch(members[rng.randint(len(members))], ps, rng)
            t1 = time.time()
            waited += t1 - t0
            if first is None:
                first = t1 - launched
            step(a, b)
    print(RESULT_PREFIX + json.dumps({'first_step': first, 'input_wait': waited}))


def bench_training(path, list_path, data_dir, ps, work_dir, tag):
    """(b) peak RSS and (c) launch -> first step, input wait over epoch 1, for one path."""
    log = os.path.join(work_dir, '%s.log' % tag)
    if path == 'naive':
        cmd = [sys.executable, os.path.abspath(__file__), '--child=naive_train',
               '--data_dir=' + data_dir, '--list=' + list_path, '--ps=%d' % ps,
               '--launched=%.6f' % time.time()]
        lines, wall, rss = run_child(cmd, log)
        result = [json.loads(line[len(RESULT_PREFIX):]) for _, line in lines
                  if line.startswith(RESULT_PREFIX)]
        return dict(result[0], rss_gb=rss, wall=wall)
    ckpt = os.path.join(work_dir, tag + '_ckpt')
    cmd = [sys.executable, os.path.join(ROOT, 'train_Sony.py'), '--data_dir=' + data_dir,
           '--train_list=' + list_path, '--checkpoint_dir=' + ckpt, '--ps=%d' % ps, '--epochs=1',
           '--result_dir=' + os.path.join(work_dir, tag + '_result'), '--device=cpu']
    launched = time.time()
    lines, wall, rss = run_child(cmd, log)
    first = [float(m.group(1)) for m in (train_Sony.FIRST_STEP_LOG_RE.match(line)
                                         for _, line in lines) if m]
    epochs = [m for m in (train_Sony.EPOCH_LOG_RE.match(l) for _, l in lines) if m]
    return {'first_step': first[0] - launched, 'input_wait': float(epochs[0].group(5)),
            'rss_gb': rss, 'wall': wall}


# ---------------------------------------------------------------- (d) step time

def bench_step(pairs, data_dir, ps, steps):
    import network
    tf = tf_v1()
    data, crops = project_data(pairs, data_dir, ps)
    threads = npu_config.Distribution().cores()
    inputs, targets = pipeline.input_pipeline(data, crops, ps, 1, threads)[:2]
    loss = tf.reduce_mean(tf.abs(network.unet(inputs) - targets))
    train_op = tf.train.AdamOptimizer(train_Sony.LEARNING_RATE).minimize(loss)
    rng = np.random.RandomState(0)
    premade = {inputs: rng.uniform(size=(1, ps, ps, 4)).astype(np.float32),
               targets: rng.uniform(size=(1, 2 * ps, 2 * ps, 3)).astype(np.float32)}
    times = {'pipeline': [], 'premade': []}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(2):  # warm-up both ways
            sess.run(train_op)
            sess.run(train_op, premade)
        for _ in range(steps):  # alternate, so load from other processes hits both alike
            for name, feed in (('pipeline', None), ('premade', premade)):
                t0 = time.time()
                sess.run(train_op, feed)
                times[name].append(time.time() - t0)
    return dict((k, float(np.median(v))) for k, v in times.items())


def define_flags():
    from absl import flags
    flags.DEFINE_string('data_dir', '/tmp/train_bench_full/data',
                        'generated full-size dataset root')
    flags.DEFINE_string('list', '', 'training list; default <data_dir>/Sony_train_list.txt')
    flags.DEFINE_string('work_dir', '/tmp/train_bench_full/work', 'logs, checkpoints, list subsets')
    flags.DEFINE_integer('ps', train_Sony.PATCH, 'patch size on the packed input')
    flags.DEFINE_list('sizes', ['4', '16'], 'dataset sizes N (pairs) for (b) and (c)')
    flags.DEFINE_integer('patches', 100, 'patches timed per round in (a)')
    flags.DEFINE_integer('steps', 4, 'train steps timed per path in (d)')
    flags.DEFINE_list('crop_threads', ['1', '2'], 'crop-thread counts compared in (e)')
    flags.DEFINE_list('sections', ['a', 'b', 'c', 'd', 'e'], 'which measurements to run')
    flags.DEFINE_string('child', '', 'internal: run one baseline training process')
    flags.DEFINE_float('launched', 0.0, 'internal: launch time of a child process')


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    list_path = f.list or os.path.join(f.data_dir, 'Sony_train_list.txt')
    if f.child == 'naive_train':
        return naive_train(list_path, f.data_dir, f.ps, f.launched)
    os.makedirs(f.work_dir, exist_ok=True)
    pairs = sid_lists.read_list(list_path, f.data_dir)
    sizes = [int(n) for n in f.sizes]
    rows = []
    if 'a' in f.sections:
        r = bench_rate(pairs[:sizes[0]], f.data_dir, f.ps, f.patches)
        rows.append(('(a) patches/s at ps=%d' % f.ps, '%.1f' % r['naive'], '%.1f' % r['project']))
        print(rows[-1])
    if 'b' in f.sections or 'c' in f.sections:
        for n in sizes:
            sub = subset_list(list_path, n, os.path.join(f.work_dir, 'train_%d.txt' % n))
            raw_cache.build_cache([(p.short, 'input') for p in pairs[:n]] +
                                  [(p[1], 'gt') for p in pairs[:n]],
                                  os.path.join(f.data_dir, 'cache'), f.data_dir)  # warm cache
            r = dict((path, bench_training(path, sub, f.data_dir, f.ps, f.work_dir,
                                           '%s_%d' % (path, n))) for path in ('naive', 'project'))
            rows.append(('(b) peak RSS GB, N=%d' % n, '%.2f' % r['naive']['rss_gb'],
                         '%.2f' % r['project']['rss_gb']))
            rows.append(('(c) launch -> first step s, N=%d' % n, '%.1f' % r['naive']['first_step'],
                         '%.1f' % r['project']['first_step']))
            rows.append(('(c) input wait over epoch 1 s, N=%d' % n,
                         '%.2f' % r['naive']['input_wait'], '%.2f' % r['project']['input_wait']))
            print(rows[-3:])
    if 'd' in f.sections:
        r = bench_step(pairs[:sizes[0]], f.data_dir, f.ps, f.steps)
        rows.append(('(d) train step s at ps=%d: pipeline vs pre-made arrays' % f.ps,
                     '%.3f' % r['premade'], '%.3f' % r['pipeline']))
        print(rows[-1])
    if 'e' in f.sections:
        threads = [int(n) for n in f.crop_threads]
        r = bench_threads(pairs[:sizes[0]], f.data_dir, f.ps, f.patches, threads)
        for n in threads:
            rows.append(('(e) patches/s at ps=%d, %d crop threads' % (f.ps, n), '', '%.1f' % r[n]))
        print(rows[-len(threads):])
    print('\n| measurement | naive / pre-made | project |\n|---|---|---|')
    for row in rows:
        print('| %s | %s | %s |' % row)


if __name__ == '__main__':
    cli.run(main, define_flags)
