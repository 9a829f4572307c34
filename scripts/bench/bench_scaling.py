"""Measure data-parallel scaling with Horovod on CPU workers: training steps/s for 1 and 2 workers
on generated data, the allreduce of one step's gradients (the U-Net's 7.76 M float32
parameters, ~31 MB) on its own, and the time of one validation, which the ranks share.

Why both: on a small machine the workers share the same cores, so the step time of 2 workers
mostly shows compute contention; the allreduce timing isolates the communication a real
multi-device run adds per step, which is what an estimate for 8 devices needs. Runs of different
worker counts are interleaved (1, 2, 1, 2, ...) so that background load hits them alike.

    python3 scripts/bench/bench_scaling.py                      # ~8 minutes on 2 cores
    python3 scripts/bench/bench_scaling.py --workers=1,2,4 --ps=512 --json=scaling.json
    python3 scripts/bench/bench_scaling.py --sections=validation --val_scenes=8
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'scripts'))
sys.path.insert(0, os.path.join(ROOT, 'scripts', 'modelzoo'))  # parse_log
import cli  # noqa: E402 (after the path is set)

WARMUP_STEPS = 3   # graph compilation and first crops
TIMEOUT = 1800

# One step's gradient allreduce as hvd.DistributedOptimizer does it: one allreduce per trainable
# variable of the real U-Net, fused by Horovod, averaged. The time of the same graph without the
# allreduce (making and summing the tensors) is subtracted.
ALLREDUCE_PROBE = r'''
import sys, time
import numpy as np
import tensorflow.compat.v1 as tf
import horovod.tensorflow as hvd
import network
tf.disable_v2_behavior()
hvd.init()
network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
# A stateful input: with constant gradients grappler folds the allreduce itself away.
scale = tf.random_uniform([], 1.0, 2.0)
grads = [tf.ones(v.shape.as_list()) * scale for v in tf.trainable_variables()]
local = tf.add_n([tf.reduce_sum(g) for g in grads])
reduced = tf.add_n([tf.reduce_sum(hvd.allreduce(g)) for g in grads])
size = sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables()) * 4


def median_seconds(sess, fetch, iterations, warmup):
    for _ in range(warmup):
        sess.run(fetch)
    times = []
    for _ in range(iterations):
        t0 = time.time()
        sess.run(fetch)
        times.append(time.time() - t0)
    return sorted(times)[len(times) // 2]


with tf.Session() as sess:
    iterations, warmup = int(sys.argv[1]), int(sys.argv[2])
    with_allreduce = median_seconds(sess, reduced, iterations, warmup)
    without = median_seconds(sess, local, iterations, warmup)
if hvd.rank() == 0:
    print('ALLREDUCE bytes=%d median_s=%.6f with_s=%.6f without_s=%.6f'
          % (size, max(0.0, with_allreduce - without), with_allreduce, without))
'''


def define_flags():
    from absl import flags
    flags.DEFINE_list('workers', ['1', '2'], 'Horovod worker counts to compare')
    flags.DEFINE_integer('repeats', 3, 'interleaved runs per worker count (the median is reported)')
    flags.DEFINE_integer('epochs', 3, 'epochs per training run')
    flags.DEFINE_integer('train_scenes', 8, 'generated training scenes (steps per epoch / workers)')
    flags.DEFINE_integer('height', 576, 'generated raw height (packed: half)')
    flags.DEFINE_integer('width', 784, 'generated raw width (packed: half)')
    flags.DEFINE_integer('ps', 256, 'packed patch size (the paper: 512)')
    flags.DEFINE_integer('allreduce_iterations', 20, 'timed gradient allreduces (after 3 warm-up)')
    flags.DEFINE_integer('val_scenes', 4, 'generated validation scenes (burst _00 pairs)')
    flags.DEFINE_list('sections', ['steps', 'allreduce', 'validation'], 'what to measure')
    flags.DEFINE_string('json', '', 'also write the results here')


def horovodrun(np_, args, env):
    cmd = ['horovodrun', '-np', str(np_), '-H', 'localhost:%d' % np_, '--gloo'] + args
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, env=env, timeout=TIMEOUT)
    if out.returncode != 0:
        sys.exit('bench_scaling: %s failed:\n%s' % (' '.join(cmd), out.stdout[-3000:]))
    return out.stdout


def train_run(np_, data, work, f, env):
    """Mean step time (s) after warm-up of one fresh training run with np_ workers."""
    import parse_log
    ckpt = tempfile.mkdtemp(dir=work, prefix='ckpt')
    log = os.path.join(work, 'train_%d.log' % np_)
    out = horovodrun(np_, [sys.executable, os.path.join(ROOT, 'train_Sony.py'),
                           '--distributed=horovod', '--device=cpu', '--data_dir=' + data,
                           '--train_list=' + os.path.join(data, 'Sony_train_list.txt'),
                           '--cache_dir=' + os.path.join(work, 'cache'),
                           '--checkpoint_dir=' + ckpt, '--result_dir=' + ckpt,
                           '--epochs=%d' % f.epochs, '--ps=%d' % f.ps, '--save_freq=1000000'],
                     env)
    with open(log, 'w') as fh:
        fh.write(out)
    shutil.rmtree(ckpt)
    times, _ = parse_log.parse_training(parse_log.chief_lines(log), log)
    return parse_log.mean_step_time(times, WARMUP_STEPS), len(times)


def validation_run(np_, data, work, env):
    """Seconds of the validation after one epoch with np_ workers sharing the pairs (rank 0's
    VAL_LOG line)."""
    import train_Sony
    ckpt = tempfile.mkdtemp(dir=work, prefix='ckpt')
    out = horovodrun(np_, [sys.executable, os.path.join(ROOT, 'train_Sony.py'),
                           '--distributed=horovod', '--device=cpu', '--data_dir=' + data,
                           '--train_list=' + os.path.join(data, 'Sony_train_list.txt'),
                           '--val_list=' + os.path.join(data, 'Sony_val_list.txt'),
                           '--cache_dir=' + os.path.join(work, 'cache'), '--val_every=1',
                           '--checkpoint_dir=' + ckpt, '--result_dir=' + ckpt, '--epochs=1',
                           '--ps=64', '--save_freq=1000000', '--progress=lines'], env)
    shutil.rmtree(ckpt)
    for line in out.splitlines():
        m = train_Sony.VAL_LOG_RE.match(line.split(':', 1)[-1] if line.startswith('[') else line)
        if m:
            return float(m.group(7)), int(m.group(2))
    sys.exit('bench_scaling: no validation line in:\n%s' % out[-3000:])


def main(argv):
    del argv
    from absl import flags
    import make_dataset
    f = flags.FLAGS
    workers = [int(w) for w in f.workers]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
    work = tempfile.mkdtemp(prefix='sid_bench_scaling_')
    try:
        data = os.path.join(work, 'data')
        make_dataset.generate(data_dir=data, height=f.height, width=f.width,
                              n_train=f.train_scenes, n_test=0, n_val=f.val_scenes, bursts=1,
                              seed=0, list_dir=data)
        step_times, val_times = dict((w, []) for w in workers), dict((w, []) for w in workers)
        for repeat in range(f.repeats):
            for w in workers:  # interleaved: background load hits every count alike
                if 'steps' in f.sections:
                    seconds, steps = train_run(w, data, work, f, env)
                    step_times[w].append(seconds)
                    print('run %d: %d worker(s), %d steps logged, %.4f s/step'
                          % (repeat + 1, w, steps, seconds))
                if 'validation' in f.sections:
                    seconds, pairs = validation_run(w, data, work, env)
                    val_times[w].append(seconds)
                    print('run %d: %d worker(s), validation of %d pairs %.1f s'
                          % (repeat + 1, w, pairs, seconds))
                sys.stdout.flush()
        fields = None
        if 'allreduce' in f.sections:
            probe = os.path.join(work, 'allreduce_probe.py')
            with open(probe, 'w') as fh:
                fh.write(ALLREDUCE_PROBE)
            out = horovodrun(2, [sys.executable, probe, str(f.allreduce_iterations), '3'], env)
            line = [text for text in out.splitlines() if 'ALLREDUCE' in text][0]
            fields = dict(kv.split('=') for kv in line.split('ALLREDUCE ', 1)[1].split())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(values):
        return sorted(values)[len(values) // 2]

    results = {'ps': f.ps, 'cores': os.cpu_count(), 'workers': {}, 'validation': {}}
    if 'steps' in f.sections:
        base = median(step_times[workers[0]])
        print('\npatch %d, %d CPU cores, median of %d interleaved runs' % (f.ps, os.cpu_count(),
                                                                           f.repeats))
        print('| workers | s/step | steps/s per worker | images/s total | vs 1 worker |')
        print('|---|---|---|---|---|')
        for w in workers:
            step = median(step_times[w])
            speedup = (w / step) / (workers[0] / base)
            results['workers'][w] = dict(step_s=step, all_step_s=step_times[w],
                                         images_per_s=w / step, speedup=speedup)
            print('| %d | %.4f | %.2f | %.2f | %.2fx |' % (w, step, 1 / step, w / step, speedup))
    if 'validation' in f.sections:
        base = median(val_times[workers[0]])
        print('\nvalidation of %d pairs (%d x %d raws), %d CPU cores, median of %d runs'
              % (f.val_scenes, f.height, f.width, os.cpu_count(), f.repeats))
        print('| workers | validation s | vs 1 worker |\n|---|---|---|')
        for w in workers:
            seconds = median(val_times[w])
            results['validation'][w] = dict(seconds=seconds, all_s=val_times[w])
            print('| %d | %.1f | %.2fx |' % (w, seconds, base / seconds))
    if fields is not None:
        size, seconds = int(fields['bytes']), float(fields['median_s'])
        # Ring allreduce moves 2 (n-1)/n of the buffer through every link: 1x it for n=2.
        results['allreduce'] = dict(bytes=size, median_s=seconds,
                                    bus_gb_per_s=size / seconds / 1e9)
        print('\ngradient allreduce, 2 Gloo workers: %.1f MB in %.1f ms (median of %d), bus '
              'bandwidth %.2f GB/s' % (size / 1e6, seconds * 1e3, f.allreduce_iterations,
                                       size / seconds / 1e9))
    if f.json:
        with open(f.json, 'w') as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == '__main__':
    cli.run(main, define_flags)
