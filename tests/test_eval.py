"""eval.py: reports, per-ratio tables, every SSIM protocol in one pass, bad inputs (the metrics
themselves are tested in test_metrics.py)."""
import csv
import errno
import json
import math
import os
import re

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

import eval as sid_eval
import cli
import metrics
import parse_log
from conftest import run_script
from test_metrics import noisy, smooth_image

RNG_SEED = 5


def save(image, path):
    Image.fromarray(image, 'RGB').save(str(path))


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
            np.mean([structural_similarity(out[..., c], gt[..., c], data_range=255)
                     for c in range(3)]), ratio, scene)  # per channel: skimage 0.18 and 0.26
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
    assert len(rows) == 6 and set(row['ssim_protocol'] for row in rows) == {'skimage'}
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
        items, ['skimage'], ())
    assert len(sid_eval.list_results(str(final), first_burst=True)) == 6


def test_bad_results_fail_with_one_line_naming_the_file(tmp_path):
    rng = np.random.RandomState(RNG_SEED)
    final = tmp_path / 'final'
    make_results(final, rng, [(10001, 100, 5), (10002, 250, 5)])
    # Size mismatch.
    save(smooth_image(rng, 40, 64), str(final / '10002_00_250_gt.png'))
    with pytest.raises(cli.SidError, match='10002_00_250_out.png: size 64x48 differs'):
        sid_eval.score((str(final / '10002_00_250_out.png'), str(final / '10002_00_250_gt.png'),
                        ('skimage',)))
    # Unreadable PNG.
    (final / '10001_00_100_out.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
    with pytest.raises(cli.SidError, match='10001_00_100_out.png: unreadable image'):
        sid_eval.read_png(str(final / '10001_00_100_out.png'))
    # Not RGB.
    Image.new('L', (4, 4)).save(str(final / 'grey.png'))
    with pytest.raises(cli.SidError, match='grey.png: expected an 8-bit RGB PNG, found mode L'):
        sid_eval.read_png(str(final / 'grey.png'))
    # Missing ground truth: found before any work, as a one-line error and exit 1.
    os.remove(str(final / '10002_00_250_gt.png'))
    proc = run_script('eval.py', '--result_dir=%s' % final)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: no ground truth 10002_00_250_gt.png next to it'
        % (final / '10002_00_250_out.png')]
    assert not list(final.glob('eval_*'))  # nothing written
    # Empty folder.
    with pytest.raises(cli.SidError, match='no test_Sony.py outputs'):
        sid_eval.find_final_dir(str(tmp_path / 'nowhere'))


def test_all_protocols_in_one_pass_one_table_and_named_reports(tmp_path):
    rng = np.random.RandomState(RNG_SEED)
    make_results(tmp_path / 'final', rng, [(10001, 100, 5), (10002, 250, 15), (10003, 300, 30)])
    final = tmp_path / 'final'
    proc = run_script('eval.py', '--result_dir=%s' % final, '--ssim=all', '--jobs=1')
    assert proc.returncode == 0, proc.stderr
    names = list(metrics.SSIM_PROTOCOLS)
    assert names == ['skimage', 'wang', 'matlab']
    expected = {}  # protocol -> per-image SSIMs, straight from metrics.py
    images = sorted(n for n in os.listdir(str(final)) if n.endswith('_out.png'))
    for name in names:
        expected[name] = [metrics.ssim(sid_eval.read_png(str(final / i)),
                                       sid_eval.read_png(str(final / i.replace('_out', '_gt'))),
                                       name) for i in images]
    lines = proc.stdout.splitlines()
    assert all('SSIM (%s): ' % n in lines[0] for n in names) and 'MATLAB' in lines[0]
    # One table: ratio x (images, PSNR, SSIM of each protocol).
    assert '| ratio | images | PSNR (dB) | SSIM (skimage) | SSIM (wang) | SSIM (matlab) |' in lines
    row = [l for l in lines if l.startswith('| all |')][0].strip('|').split('|')
    assert [float(v) for v in row[3:]] == pytest.approx(
        [np.mean(expected[n]) for n in names], abs=1e-4)
    for name in names:
        m = [sid_eval.PROTOCOL_SSIM_LOG_RE.match(l) for l in lines]
        value = [float(x.group(2)) for x in m if x and x.group(1) == name]
        assert value == pytest.approx([np.mean(expected[name])], abs=1e-4)
    # The ModelZoo lines still parse; `average ssim:` is the default (first) protocol.
    psnr_value, ssim_value = parse_log.parse_eval(lines)
    assert ssim_value == pytest.approx(np.mean(expected['skimage']), abs=1e-4)

    with open(str(final / 'eval_all.csv')) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * len(names)
    for row in rows:
        k = images.index(row['image'])
        assert float(row['ssim']) == pytest.approx(expected[row['ssim_protocol']][k], abs=1e-6)
        assert metrics.SSIM_PROTOCOLS[row['ssim_protocol']].description in row['protocol']
    report = json.loads((final / 'eval_all.json').read_text())
    assert report['ssim_protocols'] == names
    assert report['average_psnr'] == pytest.approx(psnr_value, abs=1e-4)
    for name in names:
        assert report['average_ssim_by_protocol'][name] == pytest.approx(np.mean(expected[name]))
        assert report['per_ratio']['x250']['ssim_by_protocol'][name] == pytest.approx(
            expected[name][1])
        assert report['images'][2]['ssim_by_protocol'][name] == pytest.approx(expected[name][2])
    assert report['per_ratio']['x100']['ssim'] == pytest.approx(expected['skimage'][0])
    md = (final / 'eval_all.md').read_text()
    assert 'SSIM (matlab):' in md and '| SSIM (wang) | SSIM (matlab) |' in md


def test_images_smaller_than_the_ssim_window_are_a_one_line_error(tmp_path):
    """skimage 0.18 raised 'win_size exceeds image extent' with a traceback; now every runtime
    names the image and the protocol, and MATLAB's protocol (replicate padding) still scores it."""
    final = tmp_path / 'final'
    os.makedirs(str(final))
    rng = np.random.RandomState(RNG_SEED)
    out, gt = final / '10001_00_100_out.png', final / '10001_00_100_gt.png'
    for height, protocol, failing, window in ((5, 'skimage', 'skimage', 7),
                                              (9, 'all', 'wang', 11)):  # 9 rows pass skimage's 7
        image = smooth_image(rng, height, 12)
        save(image, str(gt))
        save(noisy(rng, image, 10), str(out))
        proc = run_script('eval.py', '--result_dir=%s' % final, '--ssim=%s' % protocol)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [
            'error: %s: 12x%d image is smaller than the %dx%d window of SSIM protocol %s'
            % (out, height, window, window, failing)]
        assert not list(final.glob('eval_*'))
    proc = run_script('eval.py', '--result_dir=%s' % final, '--ssim=matlab')
    assert proc.returncode == 0, proc.stderr
    assert re.search(r'^average ssim matlab: 0\.\d+$', proc.stdout, re.M)


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
    scores = [sid_eval.score((i[3], i[4], ['skimage'])) for i in items]
    summary = sid_eval.summarize(items, scores, ['skimage'])
    real_open = os.open

    def disk_full_at_the_last(path, flags, *args, **kwargs):
        if str(path).endswith('eval_skimage.md'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, 'open', disk_full_at_the_last)
    with pytest.raises(cli.SidError) as e:
        sid_eval.write_reports(str(final), 'eval_skimage', items, scores, summary, ['skimage'],
                               ())
    assert str(e.value) == '%s: cannot write (no space left on %s)' % (
        final / 'eval_skimage.md', final)
    assert not list(final.glob('*eval*')) and not list(final.glob('.tmp-*'))
