"""Score test_Sony.py's (or test_Fuji.py's) 8-bit outputs against their ground truths: PSNR and
SSIM per image, per exposure ratio (x100, x250, x300: both cameras' ratios) and overall, under
named, reproducible protocols. --camera=Fuji only changes the defaults (./result_Fuji/, no
misaligned scenes to exclude).

Published SID numbers disagree mostly because the protocol is left unstated. The metrics live in
metrics.py (one implementation, also used during training):
  PSNR  10 log10(255^2 / MSE) over all pixels and channels of the 8-bit PNGs (one formula, as
        the paper; the average is the mean of per-image PSNRs).
  SSIM  --ssim=skimage (default): skimage's defaults averaged over RGB (the Ascend ModelZoo
        protocol); --ssim=wang: Wang et al. 2004 Gaussian window, per channel; --ssim=matlab:
        MATLAB's ssim defaults, the protocol of the paper's 28.88 / 0.787; --ssim=all: every
        protocol in one pass, one table.
Every output names the protocols, the pair set (burst _00 only, or all) and whether the authors'
three misaligned scenes were left out (--exclude).

Prints `average psnr: X` and `average ssim: Y` (the lines ModelZoo's tooling parses; Y is the
first protocol scored, skimage with --ssim=all), `average ssim <protocol>: Y` for each protocol,
a table per ratio with one SSIM column per protocol, and writes
eval_<ssim>[_exclude].{csv,json,md} next to the images.

    python3 eval.py                          # ./result_Sony/final/, all cores
    python3 eval.py --ssim=all --exclude     # the three SSIM protocols, misaligned scenes left out
"""
import contextlib
import csv
import io
import json
import os
import re
import sys
import time
from collections import OrderedDict

import numpy as np

import camera
import cli
import safe_files
from metrics import SSIM_PROTOCOLS, psnr, ssim

ALL_PROTOCOLS = 'all'  # --ssim value: every protocol of metrics.SSIM_PROTOCOLS
RATIOS = (100, 250, 300)  # the Sony and Fuji sets' ratios, always listed (even if empty)
CHECKPOINT_KEY = 'sid_checkpoint'  # PNG text chunk test_Sony.py writes into each output
INFERENCE_KEY = 'sid_inference'  # and its inference settings ('tiling=inexact' means seams)
OUT_RE = re.compile(r'^(\d{5})_(\d{2})_(\d+)_out\.png$')  # test_Sony.py's result names
# The closing lines ModelZoo tooling greps; scripts/modelzoo/parse_log.py parses them with these
# regexes.
PSNR_LOG = 'average psnr: %.4f'
SSIM_LOG = 'average ssim: %.4f'
PROTOCOL_SSIM_LOG = 'average ssim %s: %.4f'
_FLOAT = r'([-+]?\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)'
PSNR_LOG_RE = re.compile(r'^average psnr: %s$' % _FLOAT)
SSIM_LOG_RE = re.compile(r'^average ssim: %s$' % _FLOAT)
PROTOCOL_SSIM_LOG_RE = re.compile(r'^average ssim (\w+): %s$' % _FLOAT)


def define_flags():
    from absl import flags
    camera.define_flag(sets='the defaults of --result_dir and --exclude_scenes')
    flags.adopt_module_key_flags(camera)  # --help lists --camera
    flags.DEFINE_string('result_dir', './result_Sony/',
                        'test_Sony.py --result_dir, or its final/ folder with the PNGs')
    flags.DEFINE_enum('ssim', 'skimage', list(SSIM_PROTOCOLS) + [ALL_PROTOCOLS],
                      'SSIM protocol: ' + '; '.join('%s = %s' % (k, v.description)
                                                    for k, v in SSIM_PROTOCOLS.items())
                      + '; all = every one of them in one pass')
    flags.DEFINE_bool('exclude', False, 'leave out the misaligned scenes (--exclude_scenes)')
    flags.DEFINE_list('exclude_scenes', list(camera.SONY.misaligned),
                      'scene ids left out with --exclude (default: the authors\' misaligned '
                      'scenes of the camera\'s test set)')
    flags.DEFINE_bool('first_burst', False, 'score only the _00 pairs (the official test set) '
                      'when the folder also holds test_Sony.py --all_pairs results')
    flags.DEFINE_integer('jobs', 0, 'worker processes; 0 = one per CPU core, 1 = no pool')


def read_png(path, with_info=False):
    """An 8-bit RGB PNG as a uint8 [H, W, 3] array (and its text chunks), or a one-line SidError."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            mode, info = im.mode, dict(im.info)
            pixels = np.asarray(im)
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's unreadable / truncated errors
        raise cli.SidError('%s: unreadable image (%s)' % (path, str(e).splitlines()[0][:80]))
    if mode != 'RGB':
        raise cli.SidError('%s: expected an 8-bit RGB PNG, found mode %s' % (path, mode))
    return (pixels, info) if with_info else pixels


def score(job):
    """Worker: (out_path, gt_path, protocols) -> (psnr, (ssim of each protocol), checkpoint stamp
    of the output or None). Module level so a Pool can pickle it.
    """
    out_path, gt_path, protocols = job
    (out, info), gt = read_png(out_path, with_info=True), read_png(gt_path)
    if out.shape != gt.shape:
        raise cli.SidError('%s: size %dx%d differs from its ground truth %s (%dx%d)' % (
            out_path, out.shape[1], out.shape[0], os.path.basename(gt_path), gt.shape[1],
            gt.shape[0]))
    try:
        ssims = tuple(ssim(out, gt, protocol) for protocol in protocols)
    except cli.SidError as e:  # e.g. an image smaller than the SSIM window
        raise cli.SidError('%s: %s' % (out_path, e))
    return psnr(out, gt), ssims, info.get(CHECKPOINT_KEY)


# ---------------------------------------------------------------- results folder

def find_final_dir(result_dir):
    """The folder holding *_out.png: result_dir itself or result_dir/final."""
    for folder in (result_dir, os.path.join(result_dir, 'final')):
        if os.path.isdir(folder) and any(OUT_RE.match(n) for n in os.listdir(folder)):
            return folder
    raise cli.SidError('%s: no test_Sony.py outputs (*_out.png) here or in its final/ folder'
                       % result_dir)


def list_results(final_dir, exclude_scenes=(), first_burst=False):
    """[(scene, burst, ratio, out_path, gt_path)] sorted by name; every output needs its _gt.png."""
    items = []
    for name in sorted(os.listdir(final_dir)):
        m = OUT_RE.match(name)
        if not m or m.group(1) in exclude_scenes or (first_burst and int(m.group(2)) != 0):
            continue
        out_path = os.path.join(final_dir, name)
        gt_path = out_path[:-len('_out.png')] + '_gt.png'
        if not os.path.isfile(gt_path):
            raise cli.SidError('%s: no ground truth %s next to it' % (out_path,
                                                                      os.path.basename(gt_path)))
        items.append((m.group(1), int(m.group(2)), int(m.group(3)), out_path, gt_path))
    return items


def summarize(items, scores, protocols):
    """OrderedDict label -> (count, mean psnr, (mean ssim of each protocol)) per ratio and 'all'."""
    groups = OrderedDict(('x%d' % r, []) for r in RATIOS)
    for item, s in zip(items, scores):
        groups.setdefault('x%d' % item[2], []).append(s)
    groups['all'] = list(scores)
    nan = float('nan')
    return OrderedDict((label, (len(v), float(np.mean([s[0] for s in v])) if v else nan,
                                tuple(np.mean([s[1] for s in v], axis=0).tolist()) if v
                                else (nan,) * len(protocols)))
                       for label, v in groups.items())


def describe_protocol(items, protocols, excluded):
    """One line naming the PSNR formula, each SSIM protocol, the pair set and the exclusions."""
    bursts = sorted(set(item[1] for item in items))
    pairs = 'first burst frame _00 only' if bursts == [0] else 'all pairs (%d burst indices)' % len(
        bursts)
    return 'PSNR: 8-bit RGB, 10 log10(255^2/MSE) over all pixels and channels | %s | ' \
        'pairs: %s, %d images | %s' % (
            ' | '.join('SSIM (%s): %s' % (p, SSIM_PROTOCOLS[p].description) for p in protocols),
            pairs, len(items),
            'scenes %s excluded' % ','.join(excluded) if excluded else 'no scene excluded')


def markdown_table(summary, protocols):
    """ratio x (images, PSNR, one SSIM column per protocol)."""
    lines = ['| ratio | images | PSNR (dB) | %s |' % ' | '.join('SSIM (%s)' % p for p in protocols),
             '|---|---|---|%s' % ('---|' * len(protocols))]
    for label, (n, p, ssims) in summary.items():
        values = ['%.2f' % p] + ['%.4f' % s for s in ssims] if n else ['-'] * (1 + len(ssims))
        lines.append('| %s | %d | %s |' % (label, n, ' | '.join(values)))
    return '\n'.join(lines)


def finite(x):
    """JSON has no NaN/Infinity: empty groups and identical images (infinite PSNR) become null."""
    return x if np.isfinite(x) else None


def describe_checkpoints(scores):
    """Which checkpoint made the outputs, from the stamps test_Sony.py writes into them."""
    stamps = sorted(set(s[2] for s in scores if s[2]))
    unknown = sum(1 for s in scores if not s[2])
    if len(stamps) == 1 and not unknown:
        return 'checkpoint %s' % stamps[0]
    if not stamps:
        return 'checkpoint not recorded in the PNGs'
    return 'WARNING: outputs of %d different checkpoints%s' % (
        len(stamps), ' and %d unrecorded' % unknown if unknown else '')


def inexact_tiling(items):
    """Names of the outputs test_Sony.py tiled with less than the exact overlap: their tile seams
    (up to 239 levels with none) are scored as if they were the model's."""
    from PIL import Image
    names = []
    for item in items:
        try:
            with Image.open(item[3]) as im:  # text chunks precede the pixels: no decoding
                if 'tiling=inexact' in im.info.get(INFERENCE_KEY, ''):
                    names.append(os.path.basename(item[3]))
        except (OSError, ValueError, SyntaxError):
            pass  # score() names the unreadable file
    return names


def by_protocol(protocols, values):
    return OrderedDict((p, finite(v)) for p, v in zip(protocols, values))


def write_reports(final_dir, stem, items, scores, summary, protocols, excluded,
                  warning=''):
    """CSV (one row per image and SSIM protocol), JSON (everything) and Markdown (the table).

    'ssim' in the JSON is the first protocol's (the one `average ssim:` prints). The three are
    renamed into place only once all are written, so a failure while writing (a full disk)
    leaves none of them next to an older run's."""
    paths = [os.path.join(final_dir, stem + ext) for ext in ('.csv', '.json', '.md')]
    protocol = describe_protocol(items, protocols, excluded) + warning
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(['image', 'scene', 'burst', 'ratio', 'psnr', 'ssim', 'ssim_protocol',
                     'checkpoint', 'protocol'])
    for k, name in enumerate(protocols):
        row_protocol = describe_protocol(items, [name], excluded)
        for (scene, burst, ratio, out_path, _), (p, s, stamp) in zip(items, scores):
            writer.writerow([os.path.basename(out_path), scene, '%02d' % burst, ratio,
                             '%.4f' % p, '%.6f' % s[k], name, stamp or '', row_protocol])
    report = OrderedDict([
        ('protocol', protocol),
        ('ssim_protocols', list(protocols)),
        ('checkpoint', describe_checkpoints(scores)),
        ('average_psnr', finite(summary['all'][1])), ('average_ssim', finite(summary['all'][2][0])),
        ('average_ssim_by_protocol', by_protocol(protocols, summary['all'][2])),
        ('per_ratio', OrderedDict((k, dict(images=n, psnr=finite(p), ssim=finite(s[0]),
                                           ssim_by_protocol=by_protocol(protocols, s)))
                                  for k, (n, p, s) in summary.items())),
        ('images', [dict(image=os.path.basename(o), scene=sc, burst=b, ratio=r, psnr=finite(p),
                         ssim=s[0], ssim_by_protocol=by_protocol(protocols, s), checkpoint=stamp)
                    for (sc, b, r, o, _), (p, s, stamp) in zip(items, scores)]),
    ])
    contents = (text.getvalue(), json.dumps(report, indent=1, allow_nan=False) + '\n',
                '%s\n\n%s\n\n%s\n' % (protocol, describe_checkpoints(scores),
                                      markdown_table(summary, protocols)))
    with contextlib.ExitStack() as stack:
        for path, content in zip(paths, contents):
            stack.enter_context(safe_files.atomic_write(path, 'w')).write(content)
    return paths


def main(argv):
    del argv
    from absl import flags
    from tqdm import tqdm
    f = flags.FLAGS
    camera.from_flags()
    final_dir = find_final_dir(f.result_dir)
    excluded = tuple(s.strip() for s in f.exclude_scenes) if f.exclude else ()
    items = list_results(final_dir, excluded, f.first_burst)
    if not items:
        raise cli.SidError('%s: every output belongs to an excluded scene' % final_dir)
    protocols = list(SSIM_PROTOCOLS) if f.ssim == ALL_PROTOCOLS else [f.ssim]
    inexact = inexact_tiling(items)
    warning = (' | WARNING: %d of %d outputs tiled with less than the exact overlap (first: %s): '
               'rerun test_Sony.py with the default --tile_overlap to score the model'
               % (len(inexact), len(items), inexact[0])) if inexact else ''
    print(describe_protocol(items, protocols, excluded) + warning)

    jobs = [(out_path, gt_path, protocols) for _, _, _, out_path, gt_path in items]
    processes = min(f.jobs or os.cpu_count() or 1, len(jobs))
    start = time.time()
    # No bar unless stderr is a terminal (errors stay one line in logs); closed before an error.
    progress = dict(total=len(jobs), unit='image', disable=None)
    if processes == 1:
        with tqdm(jobs, **progress) as bar:
            scores = [score(job) for job in bar]
    else:
        with cli.process_pool(processes) as pool:
            with tqdm(pool.imap(score, jobs), **progress) as bar:
                scores = list(bar)
    seconds = time.time() - start

    summary = summarize(items, scores, protocols)
    print(describe_checkpoints(scores))
    print(markdown_table(summary, protocols))
    for name, value in zip(protocols, summary['all'][2]):
        print(PROTOCOL_SSIM_LOG % (name, value))
    print(PSNR_LOG % summary['all'][1])
    print(SSIM_LOG % summary['all'][2][0])
    # The scores are on screen before the reports are written: a read-only or full folder
    # costs the files (one line, exit 1), not the minutes of scoring.
    sys.stdout.flush()
    safe_files.require_writable_dir(final_dir, 'the eval reports')
    stem = 'eval_%s%s' % (f.ssim, '_exclude' if excluded else '')
    paths = write_reports(final_dir, stem, items, scores, summary, protocols, excluded,
                          warning)
    print('evaluated %d images in %.1f s with %d process%s; wrote %s'
          % (len(items), seconds, processes, '' if processes == 1 else 'es',
             ', '.join(paths)))


if __name__ == '__main__':
    cli.run(main, define_flags, hint='it scores the PNGs in --result_dir')
