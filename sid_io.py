"""Raw and list I/O shared by training, testing and the dataset scripts.

Everything that touches a raw file goes through rawpy, so generated DNGs and real Sony ARWs take
the same path. Errors are `SidError`s whose message is one line naming the offending file (and
line, for list files); scripts print it and exit non-zero.
"""
import contextlib
import os
import re
import tempfile
from collections import namedtuple

import numpy as np

# Sony A7S II (the paper's camera): 14-bit raw with a black level of 512.
BLACK_LEVEL = 512
WHITE_LEVEL = 16383
MAX_RATIO = 300  # the paper caps the amplification ratio
GT_SCALE = 65535.0  # rawpy postprocess with output_bps=16
# Positions of R, G, B, G in a 2x2 RGGB cell, in the paper's channel order.
BAYER_OFFSETS = ((0, 0), (0, 1), (1, 1), (1, 0))
SPLITS = {'train': 0, 'test': 1, 'val': 2}  # first digit of the scene id

# `10019_00_0.033s.ARW`: 5-digit scene id, burst index, exposure in seconds.
NAME_RE = re.compile(r'^(\d{5})_(\d{2})_(\d+(?:\.\d+)?)s\.[A-Za-z0-9]+$')

Pair = namedtuple('Pair', 'short long iso fnumber line')


class SidError(Exception):
    """A bad input: the message is one line naming the file."""


# ---------------------------------------------------------------- names and lists

def parse_name(path):
    """(scene_id, burst_index, exposure_seconds) from a SID file name."""
    m = NAME_RE.match(os.path.basename(path))
    if not m:
        raise SidError('%s: file name does not follow the SID scheme '
                       '<scene>_<burst>_<exposure>s.<ext> (e.g. 10019_00_0.033s.ARW)' % path)
    exposure = float(m.group(3))
    if exposure <= 0:
        raise SidError('%s: exposure in the file name must be positive' % path)
    return int(m.group(1)), int(m.group(2)), exposure


def exposure_ratio(short_path, long_path):
    """The paper's amplification: long / short exposure, capped at 300."""
    return min(parse_name(long_path)[2] / parse_name(short_path)[2], MAX_RATIO)


def read_list(list_path, data_dir, check_files=True):
    """Pairs of a SID list file (`short long ISO F` per line, paths relative to `data_dir`)."""
    try:
        with open(list_path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise SidError('%s: cannot read list file (%s)' % (list_path, e.strerror or e))
    pairs = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = '%s:%d' % (list_path, number)
        fields = text.split()
        if len(fields) != 4:
            raise SidError('%s: expected 4 fields "short long ISO F", found %d' % (where, len(fields)))
        short, long_, iso, fnumber = fields
        if not re.match(r'^ISO\d+$', iso) or not re.match(r'^F\d+(\.\d+)?$', fnumber):
            raise SidError('%s: ISO and F fields must look like ISO200 F8, found %s %s'
                           % (where, iso, fnumber))
        short, long_ = (os.path.normpath(os.path.join(data_dir, p)) for p in (short, long_))
        for path in (short, long_):
            try:
                parse_name(path)
            except SidError as e:
                raise SidError('%s: %s' % (where, e))
            if check_files and not os.path.isfile(path):
                raise SidError('%s: file not found: %s' % (where, path))
        pairs.append(Pair(short, long_, iso, fnumber, number))
    return pairs


def format_list_line(short_rel, long_rel, iso, fnumber):
    """One line in the official format: `./Sony/short/x.ARW ./Sony/long/y.ARW ISO200 F8`."""
    return '%s %s ISO%d F%s' % (short_rel, long_rel, iso, ('%g' % fnumber))


@contextlib.contextmanager
def atomic_path(path):
    """A temporary name next to `path` (same extension) that becomes `path` only if the block succeeds.

    Readers never see a half-written file, and a crash leaves at worst a hidden `.tmp-*` file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix='-' + os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Like open(path, mode) for writing, through atomic_path."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f


def write_list(lines, path):
    with atomic_write(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))


# ---------------------------------------------------------------- raw decoding

@contextlib.contextmanager
def open_raw(path):
    """rawpy.imread with LibRaw's errors turned into one-line SidErrors naming the file."""
    import rawpy  # deferred: only the scripts that decode need LibRaw loaded
    if not os.path.isfile(path):
        raise SidError('%s: raw file not found' % path)
    try:
        raw = rawpy.imread(path)
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise SidError('%s: not a readable raw file (%s)' % (path, type(e).__name__))
    try:
        yield raw
    except rawpy.LibRawError as e:
        raise SidError('%s: raw data is corrupt or truncated (%s)' % (path, type(e).__name__))
    finally:
        raw.close()


def _check_bayer(path, raw):
    colors = raw.color_desc.decode('ascii', 'replace')
    pattern = raw.raw_pattern
    if raw.num_colors < 3 or pattern is None or pattern.shape != (2, 2):
        raise SidError('%s: not a 2x2 Bayer raw (colors %s)' % (path, colors))
    names = ''.join(colors[pattern[y, x]] for y, x in BAYER_OFFSETS)
    if names != 'RGBG':
        raise SidError('%s: CFA order at (0,0),(0,1),(1,1),(1,0) is %s, expected RGBG (RGGB)'
                       % (path, names))


def read_bayer(path, levels='paper'):
    """The visible Bayer mosaic as uint16, plus (black, white) levels.

    levels='paper' uses the Sony constants (512, 16383) like the paper; levels='file' takes them
    from the raw's own metadata, for other cameras.
    """
    with open_raw(path) as raw:
        _check_bayer(path, raw)
        # raw_image_visible is a view into LibRaw's buffer: copy it before the file closes.
        bayer = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
        if levels == 'file':
            black, white = float(np.mean(raw.black_level_per_channel)), float(raw.white_level)
        else:
            black, white = float(BLACK_LEVEL), float(WHITE_LEVEL)
    if bayer.ndim != 2 or bayer.shape[0] % 2 or bayer.shape[1] % 2:
        raise SidError('%s: raw size %s is not even in height and width; SID packing needs '
                       '2x2 Bayer cells' % (path, 'x'.join(map(str, bayer.shape))))
    return bayer, (black, white)


def pack_bayer(bayer):
    """[H, W] RGGB mosaic -> [H/2, W/2, 4] in the paper's channel order R, G, B, G (same dtype)."""
    return np.stack([bayer[y::2, x::2] for y, x in BAYER_OFFSETS], axis=-1)


def normalize(packed, black=BLACK_LEVEL, white=WHITE_LEVEL):
    """Raw counts -> [0, 1] float32 after black subtraction (the paper's scaling)."""
    x = packed.astype(np.float32)  # in place from here: no temporaries on training's hot path
    x -= np.float32(black)
    np.maximum(x, 0, out=x)
    x /= np.float32(white - black)
    return x


def amplify(x, ratio, out=None):
    """The paper's brightening of the short exposure: multiply by the ratio, clip at 1.

    out=x updates a float32 x in place (training's crops); by default x is left alone.
    """
    y = np.multiply(x, np.float32(ratio), out=out)
    return np.minimum(y, 1.0, out=y)


def pack_raw(path, levels='paper'):
    """The paper's pack_raw: normalised [H/2, W/2, 4] float32 (not yet amplified)."""
    bayer, (black, white) = read_bayer(path, levels)
    return normalize(pack_bayer(bayer), black, white)


def postprocess(path, **overrides):
    """rawpy postprocess with the paper's ground-truth flags -> uint16 [H, W, 3]."""
    args = dict(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16)
    args.update(overrides)
    with open_raw(path) as raw:
        _check_bayer(path, raw)
        rgb = raw.postprocess(**args)
    return rgb


def read_ground_truth(path):
    """The long exposure as the paper's target: postprocessed sRGB in [0, 1] float32."""
    return postprocess(path).astype(np.float32) / np.float32(GT_SCALE)


def read_exif(path):
    """(iso, fnumber, exposure_seconds) from the file's EXIF (IFD0 or the EXIF sub-IFD)."""
    import exifread
    try:
        with open(path, 'rb') as f:
            tags = exifread.process_file(f, details=False)
    except Exception as e:  # exifread raises a mix of its own and builtin errors
        raise SidError('%s: cannot read EXIF (%s)' % (path, type(e).__name__))

    def value(name):
        for prefix in ('EXIF ', 'Image '):
            tag = tags.get(prefix + name)
            if tag is not None:
                v = tag.values[0]
                return float(v.num) / v.den if hasattr(v, 'den') else float(v)
        raise SidError('%s: EXIF has no %s' % (path, name))

    return int(value('ISOSpeedRatings')), value('FNumber'), value('ExposureTime')


EXIT_INTERRUPTED = 128 + 2  # the shell's status for a run stopped by SIGINT (Ctrl-C)


def fail_cleanly(main):
    """Decorator for a script's main(): a SidError ends the run with its one-line message, exit 1;
    Ctrl-C (SIGINT, where the script has no handler of its own) with one line, exit 130."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except SidError as e:
            sys.stderr.write('error: %s\n' % e)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.stderr.write('error: interrupted (SIGINT)\n')
            sys.exit(EXIT_INTERRUPTED)
    return wrapper


# ================================================================ decoded-raw cache
# (train_Sony.py, issue 4) Decoding a raw costs 0.1-1.2 s; a training step needs only a crop.
# So each raw is decoded once into an uncompressed .npy of uint16 (packed Bayer counts for a short
# exposure, postprocessed 16-bit RGB for a long one) that training memory-maps and crops. The
# source's size and mtime are part of the cache file name: a changed raw gets a new entry and the
# stale one is deleted, and a half-written entry can never be mistaken for a good one (atomic_path).

CACHE_VERSION = 1  # bump when the decoded content changes meaning
CACHE_KINDS = ('input', 'gt')  # input: pack_bayer of read_bayer; gt: postprocess (both uint16)


def _cache_stem(raw_path, kind, cache_dir, data_dir):
    """The cache path of `raw_path` without its stamp: the raw's path below data_dir, mirrored."""
    if kind not in CACHE_KINDS:
        raise ValueError('cache kind must be one of %s, got %r' % (CACHE_KINDS, kind))
    raw_path, data_dir = os.path.abspath(raw_path), os.path.abspath(data_dir)
    rel = os.path.relpath(raw_path, data_dir)
    if rel.startswith(os.pardir):  # a raw outside data_dir: mirror its absolute path
        rel = os.path.join('_outside', raw_path.lstrip(os.sep))
    return os.path.join(cache_dir, rel + '.' + kind)


def cache_file(raw_path, kind, cache_dir, data_dir):
    """Where the decoded `kind` of `raw_path` lives: <stem>.v<version>-<size>-<mtime_ns>.npy."""
    try:
        st = os.stat(raw_path)
    except OSError as e:
        raise SidError('%s: raw file not found (%s)' % (raw_path, e.strerror or e))
    stamp = 'v%d-%d-%d' % (CACHE_VERSION, st.st_size, st.st_mtime_ns)
    return '%s.%s.npy' % (_cache_stem(raw_path, kind, cache_dir, data_dir), stamp)


def decode_for_cache(raw_path, kind):
    """The array a cache entry holds: uint16 [H/2, W/2, 4] packed counts or uint16 [H, W, 3] RGB."""
    if kind == 'input':
        return np.ascontiguousarray(pack_bayer(read_bayer(raw_path)[0]))
    return np.ascontiguousarray(postprocess(raw_path), dtype=np.uint16)


def open_cached(path):
    """A read-only memory map of a cache entry (cheap: only the pages a crop touches are read)."""
    try:
        array = np.load(path, mmap_mode='r')
    except (OSError, ValueError) as e:
        raise SidError('%s: unreadable cache entry (%s); delete it to rebuild' % (path, e))
    if array.dtype != np.uint16 or array.ndim != 3:
        raise SidError('%s: cache entry is %s %s, expected 3-D uint16; delete it to rebuild'
                       % (path, array.dtype, array.shape))
    return array


def _entry_ok(path):
    try:
        open_cached(path)
        return True
    except SidError:
        return False


def build_cache_entry(raw_path, kind, cache_dir, data_dir):
    """Decode `raw_path` into its cache entry unless a valid one exists; returns the entry path."""
    import glob
    path = cache_file(raw_path, kind, cache_dir, data_dir)
    if os.path.isfile(path) and _entry_ok(path):
        return path
    array = decode_for_cache(raw_path, kind)
    with atomic_write(path) as f:
        np.save(f, array)
    for stale in glob.glob(glob.escape(_cache_stem(raw_path, kind, cache_dir, data_dir)) + '.v*.npy'):
        if stale != path:
            with contextlib.suppress(OSError):
                os.remove(stale)
    return path


def _quiet_fork_warning():
    """rawpy warns in every forked worker; build_cache forks only before LibRaw ever ran."""
    import warnings
    warnings.filterwarnings('ignore', message='rawpy is being used in a process created by')


def _build_job(job):
    return job, build_cache_entry(*job)


def build_cache(raws, cache_dir, data_dir, workers=0, progress=True):
    """Make sure every (raw_path, kind) in `raws` has a cache entry; returns {(raw, kind): path}.

    Missing or stale entries are decoded in `workers` processes (0: all cores) with a progress
    bar; an unreadable raw raises its one-line SidError before anything trains.
    """
    import multiprocessing
    from tqdm import tqdm
    jobs = sorted(set((raw, kind) for raw, kind in raws))
    done, todo = {}, []
    for raw, kind in jobs:
        path = cache_file(raw, kind, cache_dir, data_dir)
        if os.path.isfile(path) and _entry_ok(path):
            done[(raw, kind)] = path
        else:
            todo.append((raw, kind, cache_dir, data_dir))
    if not todo:
        return done
    workers = min(workers or multiprocessing.cpu_count(), len(todo))
    bar = tqdm(total=len(todo), desc='decoding raws into %s' % cache_dir, unit='file',
               disable=not progress)
    if workers <= 1:
        results = (_build_job(job) for job in todo)
        pool = None
    else:
        # Forking is safe while this process has never run LibRaw (its OpenMP pool is what can
        # deadlock a forked child); otherwise pay for spawn's slower start.
        import sys
        ctx = multiprocessing.get_context('spawn' if 'rawpy' in sys.modules else 'fork')
        pool = ctx.Pool(workers, initializer=_quiet_fork_warning)
        results = pool.imap_unordered(_build_job, todo)
    try:
        for job, path in results:
            done[job[:2]] = path
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return done


def gt_to_float(rgb):
    """uint16 postprocessed RGB (any crop of it) -> the paper's [0, 1] float32 target."""
    out = rgb.astype(np.float32)
    out /= np.float32(GT_SCALE)
    return out
