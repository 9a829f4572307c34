"""One picture per test result: amplified input | scaling baseline | network output | ground truth.

People judge this model by looking. For every test_Sony.py (or test_Fuji.py, --camera=Fuji)
output in <result_dir>/final/ this
writes <result_dir>/montage/<scene>_<burst>_<ratio>.png: the four images side by side, downscaled
to --width, each captioned with its PSNR against the ground truth (on the full-resolution 8-bit
images, metrics.psnr, as eval.py).

  amplified input   the short raw's counts above black times the ratio, clipped at white - the
                    network's input - developed by rawpy like the ground truth
                    (raw_io.develop_amplified); its noise is what the network removes
  scaling baseline  test_Sony.py's _scale.png (the paper's baseline)
  network output    _out.png
  ground truth      _gt.png (the long exposure)

    python3 scripts/montage.py                                  # ./result_Sony, ./dataset
    python3 scripts/montage.py --test_list=dataset/Sony_test_list.txt --width=1600
    python3 scripts/montage.py --camera=Fuji          # ./result_Fuji, ./Fuji_test_list.txt
    python3 scripts/montage.py --camera=bayer --test_list=mine/Sony_test_list.txt  # any Bayer
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import eval as sid_eval  # the results folder and its PNGs
import camera
import cli
import metrics
import raw_io
import safe_files
import sid_lists

DEFAULT_WIDTH = 2048  # pixels of the whole montage: 4 panels of 512 for a 4256-wide Sony image
MARGIN = 4  # pixels between panels and around text
BACKGROUND, TEXT = (255, 255, 255), (0, 0, 0)
INPUT_NOTE = ('input: short raw x ratio in raw space (the network\'s input), developed by rawpy '
              'like the ground truth; PSNR vs the ground truth on full-size 8-bit images')


def pair_of(list_path, data_dir):
    """{(scene, burst, integer ratio): short raw path}, keyed like test_Sony.py's result names."""
    shorts = {}
    for pair in sid_lists.read_list(list_path, data_dir):
        scene, burst, _ = sid_lists.parse_name(pair.short)
        ratio = int(round(sid_lists.exposure_ratio(pair.short, pair.long)))
        shorts[(scene, burst, ratio)] = pair.short
    return shorts


def amplified_input(short_path, ratio, packing='bayer'):
    """raw_io.develop_amplified as an 8-bit image (rounded half up, as test_Sony.py's PNGs)."""
    rgb16 = raw_io.develop_amplified(short_path, ratio, packing)
    return np.floor(rgb16 * (255.0 / raw_io.GT_SCALE) + 0.5).astype(np.uint8)


def compose(panels, captions, title, width):
    """Panels side by side, downscaled to `width` in all, a caption under each, a title on top."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    line = ImageDraw.Draw(Image.new('RGB', (1, 1))).textbbox((0, 0), 'Ag', font=font)[3] + MARGIN
    panel_w = (width - MARGIN * (len(panels) + 1)) // len(panels)
    panel_h = max(1, int(round(panels[0].shape[0] * panel_w / float(panels[0].shape[1]))))
    canvas = Image.new('RGB', (width, 2 * line + panel_h + 2 * line + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN), title, fill=TEXT, font=font)
    for k, (image, caption) in enumerate(zip(panels, captions)):
        x = MARGIN + k * (panel_w + MARGIN)
        small = Image.fromarray(image, 'RGB').resize((panel_w, panel_h), Image.LANCZOS)
        canvas.paste(small, (x, 2 * line))
        draw.text((x, 2 * line + panel_h + MARGIN), caption, fill=TEXT, font=font)
    draw.text((MARGIN, 3 * line + panel_h + MARGIN), INPUT_NOTE, fill=TEXT, font=font)
    return canvas


def scale_of(out_path):
    """test_Sony.py's _scale.png next to an _out.png (a one-line error if it is missing)."""
    scale_path = out_path[:-len('_out.png')] + '_scale.png'
    if not os.path.isfile(scale_path):
        raise cli.SidError('%s: no scaling baseline %s next to it'
                           % (out_path, os.path.basename(scale_path)))
    return scale_path


def panels(item, short_path, packing='bayer'):
    """(four uint8 images, their captions, a title) for one eval.list_results item."""
    scene, burst, ratio, out_path, gt_path = item
    scene, scale_path = int(scene), scale_of(out_path)
    gt = sid_eval.read_png(gt_path)
    images = [amplified_input(short_path, ratio, packing), sid_eval.read_png(scale_path),
              sid_eval.read_png(out_path)]
    for path, image in zip((short_path, scale_path, out_path), images):
        if image.shape != gt.shape:
            raise cli.SidError('%s: size %dx%d differs from its ground truth %s (%dx%d)' % (
                path, image.shape[1], image.shape[0], gt_path, gt.shape[1], gt.shape[0]))
    names = ('input x%d' % ratio, 'scaling baseline', 'network output')
    captions = ['%s: %.2f dB' % (n, metrics.psnr(x, gt)) for n, x in zip(names, images)]
    title = '%05d_%02d x%d  (%s)' % (scene, burst, ratio, os.path.basename(short_path))
    return images + [gt], captions + ['ground truth (long exposure)'], title


def define_flags():
    from absl import flags
    flags.DEFINE_string('result_dir', './result_Sony/', 'test_Sony.py --result_dir (or its final/)')
    flags.DEFINE_string('data_dir', './dataset', 'dataset root the list paths are relative to')
    flags.DEFINE_string('test_list', './Sony_test_list.txt', 'the list test_Sony.py ran on')
    flags.DEFINE_string('out_dir', '', 'where the montages go (default: <result_dir>/montage)')
    flags.DEFINE_integer('width', DEFAULT_WIDTH, 'montage width in pixels (4 panels)')
    camera.define_flag(sets='how the input is cropped and the defaults of --result_dir and '
                       '--test_list (bayer: none for --test_list)')


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    profile = camera.from_flags()
    final_dir = sid_eval.find_final_dir(f.result_dir)
    base = os.path.dirname(final_dir) if os.path.basename(final_dir) == 'final' else final_dir
    out_dir = f.out_dir or os.path.join(base, 'montage')
    shorts = pair_of(camera.required_list(f, 'test_list', profile), f.data_dir)
    items = sid_eval.list_results(final_dir)
    keys = [(int(scene), burst, ratio) for scene, burst, ratio, _, _ in items]
    for item, key in zip(items, keys):  # every input must be there before anything is drawn
        if key not in shorts:
            raise cli.SidError('%s: no pair of %s gives this result' % (item[3], f.test_list))
        scale_of(item[3])
    for item, key in zip(items, keys):
        path = os.path.join(out_dir, '%05d_%02d_%d.png' % key)
        with safe_files.atomic_path(path) as tmp:
            compose(*panels(item, shorts[key], profile.packing), width=f.width).save(
                tmp, format='PNG')
        print(path)
    print('wrote %d montage%s to %s' % (len(items), '' if len(items) == 1 else 's', out_dir))


if __name__ == '__main__':
    cli.run(main, define_flags)
