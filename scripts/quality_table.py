"""What the network is worth on the held-out test scenes: PSNR / SSIM of the amplified input, of
classical denoisers given that same input, of the paper's scaling baseline and of the network.

A score of the network alone says little on generated data: is 24 dB good? This scores, against
each test_Sony.py ground truth (_gt.png) and on the same full-size 8-bit images as eval.py:

  amplified input   the short raw x ratio developed by rawpy (montage.py's first panel)
  non-local means   scikit-image denoise_nl_means on it (5x5 patches searched within 13x13),
                    its filter strength h chosen per image from NL_MEANS_STRENGTHS by PSNR
                    against the ground truth: the classical denoiser at its best, an upper bound
  scaling baseline  test_Sony.py's _scale.png
  network           test_Sony.py's _out.png

scikit-image's denoise_wavelet and estimate_sigma would need PyWavelets, which scikit-image 0.19+
no longer installs (not a requirement here), hence the choice of h by the ground truth.

Each row is the mean over the results in <result_dir>/final/, with PSNR and SSIM under every
protocol of metrics.py. The table is printed and written to <result_dir>/quality_table.md.

    python3 scripts/quality_table.py --test_list=dataset/Sony_test_list.txt   # after the demo
"""
import os
import sys
from collections import OrderedDict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import eval as sid_eval  # the results folder and its PNGs
import camera
import cli
import metrics
import montage  # the amplified input, exactly as the montages show it
import safe_files

NL_MEANS = dict(patch_size=5, patch_distance=6, fast_mode=True)
NL_MEANS_STRENGTHS = (0.02, 0.04, 0.08, 0.16, 0.32)  # h on [0, 1] images: a factor 2 apart
NL_MEANS_ROW = 'non-local means (skimage, best h)'
TABLE_NAME = 'quality_table.md'


def best_nl_means(image, gt):
    """(uint8 image, h): scikit-image's non-local means of `image` (uint8) at the strength of
    NL_MEANS_STRENGTHS that scores the highest PSNR against `gt`."""
    from skimage.restoration import denoise_nl_means
    x = image.astype(np.float64) / 255
    tries = [(to_uint8(denoise_nl_means(x, h=h, **dict(NL_MEANS, **metrics.skimage_channels()))),
              h) for h in NL_MEANS_STRENGTHS]
    return max(tries, key=lambda t: metrics.psnr(t[0], gt))


def to_uint8(image):
    """A float image in [0, 1] as 8 bits, rounded half up like test_Sony.py's PNGs."""
    return np.floor(np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def candidates(item, short_path, packing, gt):
    """OrderedDict row name -> uint8 image of one test result."""
    _, _, ratio, out_path, _ = item
    amplified = montage.amplified_input(short_path, ratio, packing)
    return OrderedDict([('amplified input', amplified),
                        (NL_MEANS_ROW, best_nl_means(amplified, gt)[0]),
                        ('scaling baseline (test_Sony.py)',
                         sid_eval.read_png(montage.scale_of(out_path))),
                        ('network (test_Sony.py)', sid_eval.read_png(out_path))])


def scores(image, gt):
    return (metrics.psnr(image, gt),) + tuple(metrics.ssim(image, gt, p)
                                              for p in metrics.SSIM_PROTOCOLS)


def table(means, count):
    protocols = list(metrics.SSIM_PROTOCOLS)
    ssims = ' | '.join('SSIM (%s)' % p for p in protocols)
    lines = ['| %d test images | PSNR (dB) | %s |' % (count, ssims),
             '|---|---|%s' % ('---|' * len(protocols))]
    for name, values in means.items():
        lines.append('| %s | %.2f | %s |' % (name, values[0],
                                             ' | '.join('%.4f' % v for v in values[1:])))
    return '\n'.join(lines)


def define_flags():
    from absl import flags
    flags.DEFINE_string('result_dir', './result_Sony/', 'test_Sony.py --result_dir (or its final/)')
    flags.DEFINE_string('data_dir', './dataset', 'dataset root the list paths are relative to')
    flags.DEFINE_string('test_list', './Sony_test_list.txt', 'the list test_Sony.py ran on')
    camera.define_flag(sets='how the input is cropped and the defaults of --result_dir and '
                       '--test_list (bayer: none for --test_list)')


def main(argv):
    del argv
    from absl import flags
    from tqdm import tqdm
    f = flags.FLAGS
    profile = camera.from_flags()
    final_dir = sid_eval.find_final_dir(f.result_dir)
    base = os.path.dirname(final_dir) if os.path.basename(final_dir) == 'final' else final_dir
    shorts = montage.pair_of(camera.required_list(f, 'test_list', profile), f.data_dir)
    items = sid_eval.list_results(final_dir)
    keys = [(int(scene), burst, ratio) for scene, burst, ratio, _, _ in items]
    for item, key in zip(items, keys):  # every input must be there before anything is scored
        if key not in shorts:
            raise cli.SidError('%s: no pair of %s gives this result' % (item[3], f.test_list))
        montage.scale_of(item[3])
    per_row = OrderedDict()
    for item, key in tqdm(list(zip(items, keys)), desc='scoring', unit='image'):
        gt = sid_eval.read_png(item[4])
        for name, image in candidates(item, shorts[key], profile.packing, gt).items():
            if image.shape != gt.shape:
                raise cli.SidError('%s: %s is %dx%d, its ground truth %dx%d' % (
                    item[3], name, image.shape[1], image.shape[0], gt.shape[1], gt.shape[0]))
            per_row.setdefault(name, []).append(scores(image, gt))
    text = table(OrderedDict((n, np.mean(v, axis=0)) for n, v in per_row.items()), len(items))
    with safe_files.atomic_write(os.path.join(base, TABLE_NAME), 'w') as out:
        out.write(text + '\n')
    print(text)
    print('wrote %s' % os.path.join(base, TABLE_NAME))


if __name__ == '__main__':
    cli.run(main, define_flags)
