"""eval.py: PSNR against the formula, SSIM against skimage, reports, per-ratio tables, bad inputs."""
import csv
import errno
import json
import math
import os
import re

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import eval as sid_eval
import sid_io
from conftest import run_script

RNG_SEED = 5


def smooth_image(rng, height=48, width=64):
    """A textured uint8 RGB image (SSIM on pure noise says little)."""
    y, x = np.mgrid[:height, :width].astype(np.float64)
    base = 128 + 60 * np.sin(x / 5.0)[..., None] * np.cos(y / 7.0)[..., None] * np.array([1, .7, .4])
    return np.clip(base + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


def noisy(rng, image, sigma):
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def save(image, path):
    Image.fromarray(image, 'RGB').save(str(path))


def test_psnr_is_the_8bit_formula():
    a = np.full((8, 10, 3), 100, np.uint8)
    b = a + np.uint8(5)  # MSE = 25 on every pixel and channel
    assert sid_eval.psnr(a, b) == pytest.approx(10 * math.log10(255.0 ** 2 / 25))
    c = a.copy()
    c[0, 0, 0] = 0  # one channel of one pixel off by 100: MSE = 100^2 / 240
    assert sid_eval.psnr(a, c) == pytest.approx(10 * math.log10(255.0 ** 2 * 240 / 100 ** 2))
    assert sid_eval.psnr(a, a) == float('inf')
    rng = np.random.RandomState(RNG_SEED)
    x, y = smooth_image(rng), smooth_image(rng)
    assert sid_eval.psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=255))


def test_ssim_protocols_match_skimage():
    rng = np.random.RandomState(RNG_SEED)
    gt = smooth_image(rng)
    out = noisy(rng, gt, 20)
    default = sid_eval.ssim(out, gt, 'skimage')
    # ModelZoo protocol = skimage defaults, i.e. the mean of the per-channel SSIMs.
    per_channel = [structural_similarity(out[..., c], gt[..., c], data_range=255) for c in range(3)]
    assert default == pytest.approx(np.mean(per_channel), abs=1e-12)
    wang = sid_eval.ssim(out, gt, 'wang')
    expected = np.mean([structural_similarity(out[..., c], gt[..., c], data_range=255,
                                              gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False) for c in range(3)])
    assert wang == pytest.approx(expected, abs=1e-12)
    assert abs(wang - default) > 1e-3  # the protocols really differ
    assert 0.2 < default < 0.95
    assert sid_eval.ssim(gt, gt, 'skimage') == pytest.approx(1.0)
    assert sid_eval.ssim(gt, gt, 'wang') == pytest.approx(1.0)


def make_results(final_dir, rng, specs):
    """Write out/gt/scale PNGs for (scene, ratio, noise sigma) specs; returns expected metrics."""
    expected = {}
    os.makedirs(str(final_dir))
    for scene, ratio, sigma in specs:
        gt = smooth_image(rng)
        out = noisy(rng, gt, sigma)
        stem = os.path.join(str(final_dir), '%05d_00_%d_' % (scene, ratio))
        save(gt, stem + 'gt.png')
        save(out, stem + 'out.png')
        save(noisy(rng, gt, 50), stem + 'scale.png')  # must be ignored
        expected[os.path.basename(stem) + 'out.png'] = (
            10 * math.log10(255.0 ** 2 / np.mean((out.astype(float) - gt) ** 2)),
            structural_similarity(out, gt, channel_axis=-1, data_range=255), ratio, scene)
    return expected


def test_eval_end_to_end(tmp_path):
    rng = np.random.RandomState(RNG_SEED)
    specs = [(10001, 100, 5), (10002, 100, 15), (10003, 250, 10), (10004, 250, 25),
             (10005, 300, 30), (10034, 300, 60)]
    expected = make_results(tmp_path / 'final', rng, specs)
    # --result_dir may be the parent of final/; two processes exercise the pool.
    proc = run_script('eval.py', '--result_dir=%s' % tmp_path, '--jobs=2')
    assert proc.returncode == 0, proc.stderr
    psnrs = [v[0] for v in expected.values()]
    ssims = [v[1] for v in expected.values()]
    m = re.search(r'^average psnr: ([\d.]+)$', proc.stdout, re.M)
    assert float(m.group(1)) == pytest.approx(np.mean(psnrs), abs=1e-4)
    m = re.search(r'^average ssim: ([\d.]+)$', proc.stdout, re.M)
    assert float(m.group(1)) == pytest.approx(np.mean(ssims), abs=1e-4)
    assert 'with 2 processes' in proc.stdout
    x300 = [v[0] for v in expected.values() if v[2] == 300]
    assert re.search(r'^\| x300 \| 2 \| %.2f \|' % np.mean(x300), proc.stdout, re.M)
    assert 'skimage' in proc.stdout.splitlines()[0] and 'no scene excluded' in proc.stdout

    final = tmp_path / 'final'
    report = json.loads((final / 'eval_skimage.json').read_text())
    assert report['average_psnr'] == pytest.approx(np.mean(psnrs))
    assert report['per_ratio']['x250']['images'] == 2
    assert report['per_ratio']['all']['images'] == 6
    assert 'first burst frame _00' in report['protocol']
    assert report['checkpoint'] == 'checkpoint not recorded in the PNGs'
    with open(str(final / 'eval_skimage.csv')) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for row in rows:
        assert float(row['psnr']) == pytest.approx(expected[row['image']][0], abs=1e-3)
        assert float(row['ssim']) == pytest.approx(expected[row['image']][1], abs=1e-5)
        assert 'ModelZoo' in row['protocol']
    md = (final / 'eval_skimage.md').read_text()
    assert md.startswith('PSNR: 8-bit') and '| x100 | 2 |' in md

    # Wang protocol without the misaligned scene: separate files, the old ones untouched.
    proc = run_script('eval.py', '--result_dir=%s' % final, '--ssim=wang', '--exclude', '--jobs=1')
    assert proc.returncode == 0, proc.stderr
    report = json.loads((final / 'eval_wang_exclude.json').read_text())
    assert report['per_ratio']['all']['images'] == 5
    assert 'Wang' in report['protocol'] and '10034,10045,10172 excluded' in report['protocol']
    kept = [v[0] for v in expected.values() if v[3] != 10034]
    assert report['average_psnr'] == pytest.approx(np.mean(kept))
    assert (final / 'eval_skimage.json').exists()

    # Results of test_Sony.py --all_pairs in the same folder: --first_burst keeps the _00 set.
    for name in os.listdir(str(final)):
        if name.startswith('10001_00_'):
            (final / name.replace('_00_', '_01_')).write_bytes((final / name).read_bytes())
    items = sid_eval.list_results(str(final))
    assert len(items) == 7 and 'all pairs (2 burst indices)' in sid_eval.describe_protocol(
        items, 'skimage', ())
    assert len(sid_eval.list_results(str(final), first_burst=True)) == 6


def test_bad_results_fail_with_one_line_naming_the_file(tmp_path):
    rng = np.random.RandomState(RNG_SEED)
    final = tmp_path / 'final'
    make_results(final, rng, [(10001, 100, 5), (10002, 250, 5)])
    # Size mismatch.
    save(smooth_image(rng, 40, 64), str(final / '10002_00_250_gt.png'))
    with pytest.raises(sid_io.SidError, match='10002_00_250_out.png: size 64x48 differs'):
        sid_eval.score((str(final / '10002_00_250_out.png'), str(final / '10002_00_250_gt.png'),
                        'skimage'))
    # Unreadable PNG.
    (final / '10001_00_100_out.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
    with pytest.raises(sid_io.SidError, match='10001_00_100_out.png: unreadable image'):
        sid_eval.read_png(str(final / '10001_00_100_out.png'))
    # Not RGB.
    Image.new('L', (4, 4)).save(str(final / 'grey.png'))
    with pytest.raises(sid_io.SidError, match='grey.png: expected an 8-bit RGB PNG, found mode L'):
        sid_eval.read_png(str(final / 'grey.png'))
    # Missing ground truth: found before any work, as a one-line error and exit 1.
    os.remove(str(final / '10002_00_250_gt.png'))
    proc = run_script('eval.py', '--result_dir=%s' % final)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: no ground truth 10002_00_250_gt.png next to it' % (final / '10002_00_250_out.png')]
    assert not list(final.glob('eval_*'))  # nothing written
    # Empty folder.
    with pytest.raises(sid_io.SidError, match='no test_Sony.py outputs'):
        sid_eval.find_final_dir(str(tmp_path / 'nowhere'))


def test_ssim_on_skimage_before_0_19_uses_multichannel(monkeypatch):
    """The Ascend image's skimage 0.17/0.18 has no channel_axis: eval.py must pass multichannel."""
    import skimage
    import skimage.metrics
    calls = []
    monkeypatch.setattr(skimage, '__version__', '0.18.3')
    monkeypatch.setattr(skimage.metrics, 'structural_similarity',
                        lambda a, b, **kwargs: calls.append(kwargs) or 0.5)
    image = np.zeros((8, 8, 3), np.uint8)
    assert sid_eval.ssim(image, image, 'wang') == 0.5
    assert calls == [dict(multichannel=True, data_range=255.0, gaussian_weights=True, sigma=1.5,
                          use_sample_covariance=False)]


def write_outputs(final_dir, rng, scenes):
    """Just the out/gt PNGs of (scene, ratio) pairs (make_results also computes expectations)."""
    os.makedirs(str(final_dir))
    for scene, ratio in scenes:
        gt = smooth_image(rng)
        stem = os.path.join(str(final_dir), '%05d_00_%d_' % (scene, ratio))
        save(gt, stem + 'gt.png')
        save(noisy(rng, gt, 5), stem + 'out.png')


def test_unwritable_reports_print_the_scores_then_fail_in_one_line(tmp_path):
    """A read-only or full results folder: the table first, then one line about the reports."""
    rng = np.random.RandomState(RNG_SEED)
    final = tmp_path / 'final'
    write_outputs(final, rng, [(10001, 100), (10002, 250)])
    (final / 'eval_skimage.md').mkdir()  # in the way of a report (root ignores chmod)
    proc = run_script('eval.py', '--result_dir=%s' % final, '--jobs=1')
    assert proc.returncode == 1
    assert re.search(r'^average psnr: [\d.]+$', proc.stdout, re.M)
    assert re.search(r'^\| all \| 2 \| [\d.]+ \| [\d.]+ \|$', proc.stdout, re.M)
    errors = [line for line in proc.stderr.splitlines() if 'Traceback' in line or
              line.startswith('error:')]
    assert errors == ['error: %s: cannot write (Is a directory)' % (final / 'eval_skimage.md')]
    assert not list(final.glob('.tmp-*'))


def test_reports_are_written_together_or_not_at_all(tmp_path, monkeypatch):
    rng = np.random.RandomState(RNG_SEED)
    final = tmp_path / 'final'
    write_outputs(final, rng, [(10001, 100), (10002, 250)])
    items = sid_eval.list_results(str(final))
    scores = [sid_eval.score((i[3], i[4], 'skimage')) for i in items]
    summary = sid_eval.summarize(items, scores)
    real_open = os.open

    def disk_full_at_the_last(path, flags, *args, **kwargs):
        if str(path).endswith('eval_skimage.md'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, 'open', disk_full_at_the_last)
    with pytest.raises(sid_io.SidError) as e:
        sid_eval.write_reports(str(final), 'eval_skimage', items, scores, summary, 'protocol')
    assert str(e.value) == '%s: cannot write (no space left on %s)' % (
        final / 'eval_skimage.md', final)
    assert not list(final.glob('*eval*')) and not list(final.glob('.tmp-*'))
