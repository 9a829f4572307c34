"""scripts/quality_table.py: the amplified input, classical denoisers on it, the scaling baseline
and the network, scored against the ground truths like eval.py."""
import os

import numpy as np

import eval as sid_eval
import metrics
import montage
import quality_table
from conftest import run_script

ROWS = ['amplified input', quality_table.NL_MEANS_ROW, 'scaling baseline (test_Sony.py)',
        'network (test_Sony.py)']


def run(tiny_dataset, result):
    return run_script('scripts/quality_table.py', '--result_dir=%s' % result,
                      '--data_dir=%s' % tiny_dataset,
                      '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt'))


def cells(line):
    return [c.strip() for c in line.strip('|').split('|')]


def test_one_row_per_candidate_with_psnr_and_every_ssim_protocol(tiny_dataset, results):
    proc = run(tiny_dataset, results)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert cells(lines[0]) == ['2 test images', 'PSNR (dB)', 'SSIM (skimage)', 'SSIM (wang)',
                               'SSIM (matlab)']
    assert [cells(line)[0] for line in lines[2:-1]] == ROWS
    assert lines[-1] == 'wrote %s' % (results / 'quality_table.md')
    assert (results / 'quality_table.md').read_text().splitlines() == lines[:-1]

    items = sid_eval.list_results(str(results / 'final'))
    shorts = montage.pair_of(str(tiny_dataset / 'Sony_test_list.txt'), str(tiny_dataset))
    table = {cells(line)[0]: [float(c) for c in cells(line)[1:]] for line in lines[2:-1]}
    for row, image_of in (('network (test_Sony.py)', lambda item: sid_eval.read_png(item[3])),
                          ('amplified input', lambda item: montage.amplified_input(
                              shorts[(int(item[0]), item[1], item[2])], item[2]))):
        expected = np.mean([[metrics.psnr(image_of(item), sid_eval.read_png(item[4]))] + [
            metrics.ssim(image_of(item), sid_eval.read_png(item[4]), p)
            for p in metrics.SSIM_PROTOCOLS] for item in items], axis=0)
        assert np.allclose(table[row], expected, atol=0.005), row
    assert table[quality_table.NL_MEANS_ROW][0] > table['amplified input'][0]  # very noisy


def test_non_local_means_takes_the_strength_that_scores_best():
    from skimage.restoration import denoise_nl_means
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(50, 200, 64), (48, 1))[..., None].repeat(3, axis=2)
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    gt = clean.astype(np.uint8)
    image, strength = quality_table.best_nl_means(noisy, gt)
    assert image.dtype == np.uint8 and image.shape == noisy.shape
    assert metrics.psnr(image, gt) > metrics.psnr(noisy, gt) + 6
    scores = {}
    for h in quality_table.NL_MEANS_STRENGTHS:
        out = denoise_nl_means(noisy / 255.0, h=h, patch_size=5, patch_distance=6,
                               fast_mode=True, **metrics.skimage_channels())
        scores[h] = metrics.psnr(np.floor(np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8), gt)
    assert strength == max(scores, key=scores.get)
    assert metrics.psnr(image, gt) == scores[strength]


def test_missing_inputs_are_one_line_errors_and_nothing_is_written(tiny_dataset, results):
    os.remove(str(results / 'final' / '10001_00_300_scale.png'))
    proc = run(tiny_dataset, results)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: no scaling baseline 10001_00_300_scale.png next to it'
        % (results / 'final' / '10001_00_300_out.png')]
    assert not os.path.exists(str(results / 'quality_table.md'))
    proc = run(tiny_dataset, results / 'nowhere')
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: no test_Sony.py outputs (*_out.png) here or in its final/ folder'
        % (results / 'nowhere')]
