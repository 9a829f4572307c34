"""scripts/montage.py: one picture per test result from test_Sony.py's PNGs and the short raw."""
import os

import numpy as np
from PIL import Image

import eval as sid_eval
import metrics
import montage
import raw_io
import sid_lists
from conftest import run_script, to_uint8

WIDTH = 400


def run(tiny_dataset, result, *extra):
    return run_script('scripts/montage.py', '--result_dir=%s' % result,
                      '--data_dir=%s' % tiny_dataset,
                      '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt'),
                      '--width=%d' % WIDTH, *extra)


def test_a_montage_per_result_with_psnr_captions(tiny_dataset, results):
    proc = run(tiny_dataset, results)
    assert proc.returncode == 0, proc.stderr
    names = sorted(os.listdir(str(results / 'montage')))
    assert names == ['10001_00_300.png', '10002_00_100.png']  # one per _00 test scene
    assert proc.stdout.splitlines()[-1] == 'wrote 2 montages to %s' % (results / 'montage')
    with Image.open(str(results / 'montage' / names[0])) as im:
        assert im.mode == 'RGB' and im.size[0] == WIDTH
        picture = np.asarray(im)

    item = sid_eval.list_results(str(results / 'final'))[0]
    short = str(tiny_dataset / 'Sony/short/10001_00_0.033s.dng')
    images, captions, title = montage.panels(item, short)
    gt = sid_eval.read_png(item[4])
    assert np.array_equal(images[3], gt) and np.array_equal(images[2], sid_eval.read_png(item[3]))
    assert title.startswith('10001_00 x300')
    assert captions[2] == 'network output: %.2f dB' % metrics.psnr(images[2], gt)
    assert captions[1] == 'scaling baseline: %.2f dB' % metrics.psnr(images[1], gt)
    assert captions[0] == 'input x300: %.2f dB' % metrics.psnr(images[0], gt)
    # The input is the short raw amplified to the ground truth's level: brighter than the raw
    # developed as is, about as bright as the ground truth, and noisy.
    plain = to_uint8(raw_io.postprocess(short))
    assert plain.mean() < 0.3 * gt.mean() and abs(images[0].mean() - gt.mean()) < 0.15 * gt.mean()
    assert 8 < metrics.psnr(images[0], gt) < metrics.psnr(images[2], gt)
    # The file is exactly those panels, downscaled, side by side.
    again = np.asarray(montage.compose(images, captions, title, WIDTH))
    assert np.array_equal(picture, again)


def test_amplified_input_is_the_network_input_developed(tiny_dataset, tmp_path):
    """Ratio 1 is the plain development; otherwise it is exactly the development of a raw whose
    counts above black were multiplied by the ratio and clipped at white."""
    import make_dataset
    short = str(tiny_dataset / 'Sony/short/10002_00_0.1s.dng')
    assert np.array_equal(montage.amplified_input(short, 1), to_uint8(raw_io.postprocess(short)))
    counts = raw_io.read_bayer(short)[0].astype(np.float32)
    bright = np.clip((counts - raw_io.BLACK_LEVEL) * 100 + raw_io.BLACK_LEVEL, 0,
                     raw_io.WHITE_LEVEL)
    make_dataset.write_dng(str(tmp_path / 'bright.dng'), bright.astype(np.uint16), 100, 8.0, 10.0)
    expected = raw_io.postprocess(str(tmp_path / 'bright.dng'))
    assert np.array_equal(raw_io.develop_amplified(short, 100), expected)
    assert np.array_equal(montage.amplified_input(short, 100), to_uint8(expected))


def test_missing_inputs_are_one_line_errors(tiny_dataset, results):
    final = results / 'final'
    os.remove(str(final / '10002_00_100_scale.png'))
    proc = run(tiny_dataset, results)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: no scaling baseline 10002_00_100_scale.png next to it'
        % (final / '10002_00_100_out.png')]
    assert not os.path.exists(str(results / 'montage'))  # checked before anything is drawn
    # A result that no line of the list produces.
    for name in ('10002_00_100_out.png', '10002_00_100_gt.png'):
        os.remove(str(final / name))
    for kind in ('out', 'gt', 'scale'):
        Image.new('RGB', (8, 8)).save(str(final / ('10009_00_100_%s.png' % kind)))
    proc = run(tiny_dataset, results)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        'error: %s: no pair of %s gives this result' % (final / '10009_00_100_out.png',
                                                        tiny_dataset / 'Sony_test_list.txt')]
    assert not os.path.exists(str(results / 'montage'))


def test_fuji_montage_crops_the_input_like_the_ground_truth(tiny_fuji_dataset, tmp_path):
    """--camera=Fuji: test_Fuji.py's PNGs are cropped to multiples of 6 (510 x 516 here), and the
    amplified X-Trans input is developed and cropped the same way."""
    final = tmp_path / 'result' / 'final'
    os.makedirs(str(final))
    test_list = tiny_fuji_dataset / 'Fuji_test_list.txt'
    pair = next(p for p in sid_lists.read_list(str(test_list), str(tiny_fuji_dataset))
                if sid_lists.parse_name(p.short)[1] == 0)
    scene, burst, _ = sid_lists.parse_name(pair.short)
    ratio = int(round(sid_lists.exposure_ratio(pair.short, pair.long)))
    gt = to_uint8(raw_io.develop(pair.long, 'xtrans'))
    assert gt.shape == (510, 516, 3)
    stem = str(final / ('%05d_%02d_%d_' % (scene, burst, ratio)))
    for kind in ('gt', 'out', 'scale'):
        Image.fromarray(gt).save(stem + kind + '.png')
    proc = run_script('scripts/montage.py', '--camera=Fuji', '--result_dir=%s' % final.parent,
                      '--data_dir=%s' % tiny_fuji_dataset, '--test_list=%s' % test_list,
                      '--width=%d' % WIDTH)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(str(final.parent / 'montage')) == ['%05d_00_%d.png' % (scene, ratio)]
    amplified = montage.amplified_input(pair.short, ratio, 'xtrans')
    assert amplified.shape == gt.shape
    full = raw_io.postprocess(pair.short, 'xtrans')
    assert full.shape == (512, 520, 3)  # what the Sony cropping would have kept
    # The Sony profile (no cropping) refuses the pair in one line instead of drawing it.
    proc = run_script('scripts/montage.py', '--result_dir=%s' % final.parent,
                      '--data_dir=%s' % tiny_fuji_dataset, '--test_list=%s' % test_list)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: size 520x512 differs from its ground truth %s (516x510)'
        % (pair.short, stem + 'gt.png')]


def test_bayer_montage_cuts_like_test_sony_and_amplifies_above_each_sites_black(
        tiny_bayer_dataset, tmp_path):
    """--camera=bayer: the input is cut to its red pixel like test_Sony.py --camera=bayer's PNGs,
    and amplified above each site's own black (600-603 here): a dark frame stays black at x300,
    where one mean black would lift two sites by 450 counts of 4095."""
    import make_dataset
    final = tmp_path / 'result' / 'final'
    os.makedirs(str(final))
    test_list = tiny_bayer_dataset / 'Bayer_test_list.txt'
    pair = sid_lists.read_list(str(test_list), str(tiny_bayer_dataset))[0]
    scene, burst, _ = sid_lists.parse_name(pair.short)
    ratio = int(round(sid_lists.exposure_ratio(pair.short, pair.long)))
    gt = to_uint8(raw_io.develop(pair.long, 'bayer_any'))
    assert gt.shape[:2] != raw_io.postprocess(pair.long, 'bayer_any').shape[:2]  # GRBG: cut
    stem = str(final / ('%05d_%02d_%d_' % (scene, burst, ratio)))
    for kind in ('gt', 'out', 'scale'):
        Image.fromarray(gt).save(stem + kind + '.png')
    args = ['--camera=bayer', '--result_dir=%s' % final.parent,
            '--data_dir=%s' % tiny_bayer_dataset, '--width=%d' % WIDTH]
    proc = run_script('scripts/montage.py', *args)
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1].startswith(
        'error: --test_list is empty (--camera=bayer has no default lists)')
    proc = run_script('scripts/montage.py', '--test_list=%s' % test_list, *args)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(str(final.parent / 'montage')) == ['%05d_00_%d.png' % (scene, ratio)]
    assert montage.amplified_input(pair.short, ratio, 'bayer_any').shape == gt.shape

    bayer = make_dataset.CAMERAS['bayer']
    shape = (make_dataset.BAYER_MIN_SIDE + 2, make_dataset.BAYER_MIN_SIDE + 4)
    dark = make_dataset.black_levels(bayer, shape).astype(np.uint16)
    path = str(tmp_path / 'dark.dng')
    make_dataset.write_dng(path, dark, 100, 8.0, 0.1, camera=bayer)
    assert montage.amplified_input(path, 300, 'bayer_any').max() == 0
