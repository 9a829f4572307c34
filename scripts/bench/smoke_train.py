"""Smoke run: train_Sony.py learns on a small generated dataset, on CPU, in a few minutes.

Generates small SID-layout raws, trains in chunks (each chunk is a restart, so resuming is
exercised too) and after each chunk reports the mean L1 loss of the last epoch and the PSNR of
the network's output on held-out (test split) pairs against the amplified-input baseline: the
short exposure multiplied by the ratio in raw space and developed by the same rawpy pipeline as
the ground truth.

    python3 scripts/bench/smoke_train.py --work_dir=/tmp/sid_smoke
"""
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'scripts'))
import cli
import raw_io
import sid_lists
import train_Sony  # noqa: E402

PEAK = 255.0  # PSNR on 8-bit images, the project's protocol


def psnr8(a, b):
    """PSNR of two [0, 1] images after rounding to 8 bits."""
    a8, b8 = (np.round(np.clip(x, 0.0, 1.0) * PEAK) for x in (a, b))
    return 10.0 * np.log10(PEAK ** 2 / max(np.mean((a8 - b8) ** 2), 1e-12))


def evaluate(checkpoint_dir, pairs):
    """Mean PSNR of the U-Net's full-size outputs on `pairs`, from the latest checkpoint."""
    tf = cli.import_tensorflow()
    import network
    with tf.Graph().as_default():
        packed = tf.placeholder(tf.float32, [1, None, None, 4])
        output = network.unet(packed)
        with tf.Session() as sess:
            tf.train.Saver(network.model_variables()).restore(
                sess, tf.train.latest_checkpoint(checkpoint_dir))
            scores = []
            for pair in pairs:
                ratio = sid_lists.exposure_ratio(pair.short, pair[1])
                x = raw_io.amplify(raw_io.pack_raw(pair.short), ratio)[None]
                scores.append(psnr8(sess.run(output, {packed: x})[0],
                                    raw_io.read_ground_truth(pair[1])))
    return float(np.mean(scores))


def define_flags():
    from absl import flags
    flags.DEFINE_string('work_dir', '/tmp/sid_smoke', 'generated data, checkpoints, logs')
    flags.DEFINE_integer('height', 256, 'generated raw height')
    flags.DEFINE_integer('width', 384, 'generated raw width')
    flags.DEFINE_integer('train_scenes', 8, 'training scenes')
    flags.DEFINE_integer('test_scenes', 3, 'held-out scenes')
    flags.DEFINE_integer('ps', 64, 'training patch size on the packed input')
    flags.DEFINE_list('chunks', ['10', '60', '150', '300'], 'train until these epochs, '
                      'restarting and evaluating after each')
    flags.DEFINE_float('learning_rate', train_Sony.LEARNING_RATE, 'Adam learning rate')


def main(argv):
    del argv
    from absl import flags
    import make_dataset
    tf = cli.import_tensorflow()
    tf.logging.set_verbosity(tf.logging.ERROR)
    f = flags.FLAGS
    data = os.path.join(f.work_dir, 'data')
    if not os.path.isfile(os.path.join(data, 'Sony_test_list.txt')):
        make_dataset.generate(data, f.height, f.width, f.train_scenes, f.test_scenes, 0, 2, 0, data)
    held_out = sid_lists.read_list(os.path.join(data, 'Sony_test_list.txt'), data)
    amplified = [raw_io.develop_amplified(p.short, sid_lists.exposure_ratio(p.short, p[1]))
                 / raw_io.GT_SCALE for p in held_out]
    baseline = float(np.mean([psnr8(a, raw_io.read_ground_truth(p[1]))
                              for a, p in zip(amplified, held_out)]))
    ckpt = os.path.join(f.work_dir, 'checkpoint')
    print('held-out pairs: %d, amplified-input baseline PSNR %.2f dB' % (len(held_out), baseline))
    print('| epoch | train L1 (epoch mean) | held-out PSNR dB (network) | baseline dB | minutes |')
    print('|---|---|---|---|---|')
    start = time.time()
    for epochs in f.chunks:
        cmd = [sys.executable, os.path.join(ROOT, 'train_Sony.py'), '--data_dir=' + data,
               '--train_list=' + os.path.join(data, 'Sony_train_list.txt'),
               '--checkpoint_dir=' + ckpt, '--result_dir=' + os.path.join(f.work_dir, 'result'),
               '--epochs=' + epochs, '--ps=%d' % f.ps, '--save_freq=100000',
               '--learning_rate=%g' % f.learning_rate, '--device=cpu']
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT))
        if proc.returncode:
            raise cli.SidError('train_Sony.py failed: %s' % proc.stderr.strip().splitlines()[-1])
        losses = [float(m.group(3)) for m in (train_Sony.EPOCH_LOG_RE.match(line)
                                              for line in proc.stdout.splitlines()) if m]
        print('| %s | %.4f | %.2f | %.2f | %.1f |' % (epochs, losses[-1], evaluate(ckpt, held_out),
                                                      baseline, (time.time() - start) / 60))
        sys.stdout.flush()


if __name__ == '__main__':
    cli.run(main, define_flags)
