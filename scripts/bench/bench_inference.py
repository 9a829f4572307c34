"""Benchmark full-resolution testing and evaluation on a generated full-size Sony pair (2848 x 4256)
or, with --camera=Fuji, X-Trans pair (4032 x 6032; test_Sony.py --camera=Fuji is test_Fuji.py).

Measures what issue 5 promises, each in a fresh process so peak memory is the script's own:
  1. test_Sony.py untiled vs --tile: peak RSS, network seconds per pair, and the largest 8-bit
     difference between the two outputs (must be <= 1 level);
  2. eval.py on a folder of full-size results with --jobs=1 vs all cores.

The weights are random but variance-preserving (He-style scale, output bias 0.5), so every layer,
down to the 1/16-resolution bottleneck, moves the output: a harsher tiling test than the
Glorot initialisation, whose outputs are almost flat. Pass --checkpoint_dir to use a trained model.

    python3 scripts/bench/bench_inference.py --work_dir=/tmp/sid_bench      # never inside the repo
"""
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'scripts'))
import camera  # noqa: E402
import cli

FULL_SIZES = {camera.SONY.name: (2848, 4256), camera.FUJI.name: (4032, 6032)}  # the real raws
OUTPUT_BIAS = 0.5  # centre the random network's output in [0, 1] so clipping hides little
LEAK_GAIN = 2.0 / (1.0 + 0.2 ** 2)  # He et al.'s gain for a leaky ReLU with slope 0.2
SUMMARY_RE = re.compile(r'network ([\d.]+) s per pair \(median; ([\d.]+) CPU s\); '
                        r'peak RSS (\d+) MB')
EVAL_RE = re.compile(r'evaluated (\d+) images in ([\d.]+) s')


def make_checkpoint(prefix, seed=0, realistic_scale=True, profile=camera.SONY):
    """A U-Net checkpoint with network.py's names, like the released model, of random weights.

    realistic_scale=False keeps network.py's own initialisation (Glorot, zero biases).
    """
    tf = cli.import_tensorflow()
    import network
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with tf.Graph().as_default():
        network.unet(tf.placeholder(tf.float32, [1, None, None, profile.channels]),
                     profile.block)
        variables = network.model_variables()
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(variables))
            if realistic_scale:
                for v in variables:
                    shape = v.shape.as_list()
                    if v.op.name.endswith('biases'):
                        value = np.full(shape, OUTPUT_BIAS if v.op.name.startswith('g_conv10/')
                                        else 0.0)
                    elif v.op.name in network.UPCONV_NAMES:  # one input pixel per output pixel
                        value = rng.normal(0.0, np.sqrt(1.0 / shape[3]), shape)
                    else:
                        fan_in = shape[0] * shape[1] * shape[2]
                        value = rng.normal(0.0, np.sqrt(LEAK_GAIN / fan_in), shape)
                    v.load(value.astype(np.float32), sess)
            return tf.train.Saver(var_list=variables).save(sess, prefix, write_meta_graph=False)


def receptive_field_context(size=320):
    """Packed pixels of context a 16-aligned tile needs on each side so that no output pixel of its
    core depends on input outside the context (the minimum exact --tile_overlap).

    An impulse pushed through all-positive weights reaches exactly the outputs that depend on it
    (no cancellation; max-pools pass it on). An impulse at input p reaches outputs down to p - lo
    and up to p + hi, both depending on p mod 16. A core edge at a multiple of 16 with context o
    beyond it is safe iff no impulse at distance > o past it reaches back over the edge.
    """
    tf = cli.import_tensorflow()
    import network
    align = 2 ** (len(network.ENCODER_CHANNELS) - 1)
    with tf.Graph().as_default():
        packed = tf.placeholder(tf.float32, [1, size, 32, 4])
        output = network.unet(packed)
        with tf.Session() as sess:
            for v in network.model_variables():
                fill = 0.0 if v.op.name.endswith('biases') else 0.01
                v.load(np.full(v.shape.as_list(), fill, np.float32), sess)
            lo, hi = {}, {}
            for offset in range(align):
                p = size // 2 + offset  # size // 2 is a multiple of 16
                x = np.zeros((1, size, 32, 4), np.float32)
                x[0, p, :, :] = 1.0
                rows = np.nonzero(sess.run(output, {packed: x})[0].max(axis=(1, 2)) > 0)[0] // 2
                lo[offset], hi[offset] = p - rows.min(), rows.max() - p
    # Core edge e (multiple of 16), input at e + d outside the context (d >= overlap): it reaches
    # the core iff d < lo(d mod 16). Below a core start s, input at s - 1 - d: iff d < hi(...).
    far = size // 2
    above = [d for d in range(far) if d < lo[d % align]]
    below = [d for d in range(far) if d < hi[(align - 1 - d) % align]]
    need = 1 + max(above + below)
    return need


def run(args, **kwargs):
    """Run a project script; returns (stdout, wall seconds). Exits on failure with its stderr."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
    start = time.time()
    proc = subprocess.run([sys.executable] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, **kwargs)
    seconds = time.time() - start
    if proc.returncode:
        sys.exit('%s failed:\n%s' % (' '.join(args), proc.stderr[-2000:]))
    return proc.stdout, seconds


def read_png(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert('RGB'))


def bench_test(f, work, data_dir, test_list, checkpoint, profile):
    """test_Sony.py untiled vs tiled: time, peak RSS, 8-bit differences; returns the untiled
    final/."""
    # Alternated so background load hits all settings alike.
    settings = [('untiled', [])]
    for tile in f.tile:
        extra = ['--tile=%d' % tile]
        if f.tile_overlap:
            extra.append('--tile_overlap=%d' % f.tile_overlap)
        settings.append(('tile %d' % tile, extra))
    best = {}
    for repeat in range(f.repeats):
        for name, extra in settings:
            result_dir = os.path.join(work, 'result_' + name.replace(' ', '_'))
            out, wall = run([os.path.join(ROOT, 'test_Sony.py'), '--data_dir=' + data_dir,
                             '--test_list=' + test_list, '--checkpoint_dir=' + checkpoint,
                             '--result_dir=' + result_dir, '--overwrite', '--device=cpu',
                             '--camera=' + profile.name] + extra)
            m = SUMMARY_RE.search(out)
            seconds, cpu, rss = float(m.group(1)), float(m.group(2)), int(m.group(3))
            print('%-10s run %d: network %.2f s (%.1f CPU s), peak RSS %d MB, process %.1f s'
                  % (name, repeat + 1, seconds, cpu, rss, wall))
            old = best.get(name, (1e9, 1e9, 1e9, 1e9, result_dir))
            best[name] = (min(old[0], seconds), min(old[1], cpu), min(old[2], rss),
                          min(old[3], wall), result_dir)
    final = os.path.join(best['untiled'][4], 'final')
    out_names = sorted(n for n in os.listdir(final) if n.endswith('_out.png'))
    print('\n%d %s pairs of %dx%d, network time = median per pair, best of %d runs\n'
          % ((len(out_names), profile.name) + FULL_SIZES[profile.name] + (f.repeats,)))
    print('| setting | network s/pair | x untiled | network CPU s/pair | x untiled | peak RSS MB '
          '| process s | max 8-bit diff | pixels differing |')
    print('|---|---|---|---|---|---|---|---|---|')
    for name, _ in settings:
        seconds, cpu, rss, wall, result_dir = best[name]
        worst = differing = 0
        for out_name in out_names:
            diff = np.abs(read_png(os.path.join(result_dir, 'final', out_name)).astype(np.int16)
                          - read_png(os.path.join(final, out_name)))
            worst = max(worst, int(diff.max()))
            differing += int((diff > 0).any(-1).sum())
        print('| %s | %.2f | %.2f | %.1f | %.2f | %d | %.1f | %d | %d |'
              % (name, seconds, seconds / best['untiled'][0], cpu, cpu / best['untiled'][1], rss,
                 wall, worst, differing))

    return final


def bench_eval(f, work, final):
    """eval.py on full-size results with one process vs all cores: wall and CPU seconds."""
    import resource
    out_names = sorted(n for n in os.listdir(final) if n.endswith('_out.png'))
    eval_dir = os.path.join(work, 'eval_final')
    if os.path.isdir(eval_dir):
        shutil.rmtree(eval_dir)
    os.makedirs(eval_dir)
    for i in range(f.eval_images):
        source = os.path.join(final, out_names[i % len(out_names)])
        ratio = (100, 250, 300)[i % 3]
        for kind in ('out', 'gt'):
            shutil.copy(source.replace('_out.png', '_%s.png' % kind),
                        os.path.join(eval_dir, '%05d_00_%d_%s.png' % (10001 + i, ratio, kind)))
    timings = {}
    for jobs in (1, 0) * f.repeats:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # eval.py and its pool workers
        out, wall = run([os.path.join(ROOT, 'eval.py'), '--result_dir=' + eval_dir,
                         '--jobs=%d' % jobs])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        seconds = float(EVAL_RE.search(out).group(2))
        timings[jobs] = min(timings.get(jobs, 1e9), seconds)
        print('eval --jobs=%d: %.1f s metrics, %.1f s process, %.1f CPU s (all processes)'
              % (jobs, seconds, wall, cpu))
    print('\neval of %d full-size images: 1 process %.1f s, all %d cores %.1f s, speed-up %.2fx'
          % (f.eval_images, timings[1], os.cpu_count(), timings[0], timings[1] / timings[0]))


def define_flags():
    from absl import flags
    camera.define_flag(names=camera.DATASETS,
                       sets='the generated raws\' CFA and size and the network')
    flags.adopt_module_key_flags(camera)
    flags.DEFINE_string('work_dir', '/tmp/sid_bench',
                        'generated data and results (outside the repo)')
    flags.DEFINE_string('checkpoint_dir', '', 'trained checkpoint; empty = random (see docstring)')
    flags.DEFINE_multi_integer('tile', [512], 'tile sizes to compare with untiled inference')
    flags.DEFINE_integer('tile_overlap', 0, 'overlap for the tiled runs; 0 = test_Sony.py default')
    flags.DEFINE_integer('pairs', 3, 'full-size test pairs (ratios 300, 100, 250, ...)')
    flags.DEFINE_integer('repeats', 2, 'runs of each setting (alternated; the best is kept)')
    flags.DEFINE_integer('eval_images', 8, 'full-size result pairs in the eval benchmark folder')
    flags.DEFINE_enum('only', 'all', ['all', 'test', 'eval'], 'run only one part (eval reuses '
                      'the untiled results of an earlier test part)')
    flags.DEFINE_bool('receptive_field', False, 'only print the context a tile needs, then exit')


def main(argv):
    del argv
    from absl import flags
    import make_dataset
    f = flags.FLAGS
    if f.receptive_field:
        need = receptive_field_context()
        print('a 16-aligned tile needs %d packed pixels of context on each side (--tile_overlap '
              '>= %d)' % (need, need))
        return
    work = os.path.abspath(f.work_dir)
    if work == ROOT or work.startswith(ROOT + os.sep):
        raise cli.SidError('%s: keep benchmark data outside the repository' % work)
    profile = camera.PROFILES[f.camera]
    data_dir = os.path.join(work, 'data')
    test_list = os.path.join(work, profile.lists[1])
    if not os.path.isfile(test_list):
        print('generating %d %dx%d pairs in %s' % ((f.pairs,) + FULL_SIZES[profile.name]
                                                   + (data_dir,)))
        make_dataset.generate(data_dir, *FULL_SIZES[profile.name], n_train=0, n_test=f.pairs,
                              n_val=0, bursts=1, seed=0, list_dir=work,
                              camera=profile.name.lower())
    checkpoint = f.checkpoint_dir
    if not checkpoint:
        checkpoint = os.path.join(work, 'checkpoint')
        if not os.path.isdir(checkpoint):
            make_checkpoint(os.path.join(checkpoint, 'model.ckpt'), profile=profile)

    final = os.path.join(work, 'result_untiled', 'final')
    if f.only != 'eval':
        final = bench_test(f, work, data_dir, test_list, checkpoint, profile)
    if f.only != 'test':
        if not os.path.isdir(final):
            raise cli.SidError('%s: missing; run the test part first (--only=test)' % final)
        bench_eval(f, work, final)


if __name__ == '__main__':
    cli.run(main, define_flags)
