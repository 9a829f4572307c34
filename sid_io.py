"""Raw and list I/O shared by training, testing and the dataset scripts.

Everything that touches a raw file goes through rawpy, so generated DNGs and real Sony ARWs take
the same path. Errors are `SidError`s whose message is one line naming the offending file (and
line, for list files); scripts print it and exit non-zero.
"""
import contextlib
import os
import re
import sys
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
XTRANS_PATTERN_SHAPE = (6, 6)  # Fuji X-Trans: a 6x6 colour filter repeat
FOVEON_MAGIC = b'FOVb'  # Sigma X3F files (LibRaw >= 0.20 no longer decodes them)
TIFF_MAGICS = (b'II*\x00', b'MM\x00*')
IMAGE_MAGICS = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG', 'PNG'))
DNG_VERSION_TAG = 50706
PHOTOMETRIC_MINISBLACK = 1  # a DNG main image without colour filter
PHOTOMETRIC_LINEAR_RAW = 34892  # a DNG main image already demosaiced

Pair = namedtuple('Pair', 'short long iso fnumber line')
# A camera's raw as recorded (read_mosaic): uint16 mosaic, (row, col) of its first red pixel,
# float32 black and white level per packed channel (R, G, B, G), LibRaw's orientation code.
Mosaic = namedtuple('Mosaic', 'bayer phase black white flip')

# `10019_00_0.033s.ARW`: 5-digit scene id, burst index, exposure in seconds.
NAME_RE = re.compile(r'^(\d{5})_(\d{2})_(\d+(?:\.\d+)?)s\.[A-Za-z0-9]+$')


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

def _capture_fd2():
    """Start sending C-level stderr to a temporary file; returns a function that restores it and
    returns what was written there (None if stderr could not be redirected)."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to catch
        return lambda: None
    sink = tempfile.TemporaryFile()
    os.dup2(sink.fileno(), 2)

    def restore():
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        text = sink.read().decode('utf-8', 'replace')
        sink.close()
        return text
    return restore


def _unreadable_reason(path):
    """Why LibRaw refused a file, in plain words (it only says "unsupported format")."""
    with open(path, 'rb') as f:
        head = f.read(8)
    if head.startswith(FOVEON_MAGIC):
        return 'Foveon X3 sensor (three stacked colour layers, no Bayer mosaic): not supported'
    for magic, kind in IMAGE_MAGICS:
        if head.startswith(magic):
            return 'not a readable raw file: a %s image, not camera raw data' % kind
    if head[:4] in TIFF_MAGICS:
        import tifffile
        try:
            with tifffile.TiffFile(path) as tif:
                first = tif.pages[0]
                is_dng = DNG_VERSION_TAG in first.tags
                pages = [first] + list(getattr(first, 'pages', None) or [])
                photometric = [int(p.photometric) for p in pages
                               if not getattr(p.tags.get(254), 'value', 0)]  # main images only
        except Exception:  # tifffile raises many kinds on damaged files; the reason stays generic
            return 'not a readable raw file (LibRawFileUnsupportedError)'
        if not is_dng:
            return ('not a readable raw file: a TIFF image without camera raw data (from a '
                    'scanner or an image editor?)')
        if PHOTOMETRIC_MINISBLACK in photometric:
            return 'monochrome DNG: no colour filter array, not supported'
        if PHOTOMETRIC_LINEAR_RAW in photometric:
            return 'linear DNG: already demosaiced, no CFA'
        return 'a DNG that LibRaw cannot decode (photometric %s)' % photometric
    return 'not a readable raw file (LibRawFileUnsupportedError)'


@contextlib.contextmanager
def open_raw(path):
    """rawpy.imread + unpack with LibRaw's errors turned into one-line SidErrors naming the file.

    LibRaw also prints data errors ("<file>: Unexpected end of file") to C stderr, and for some
    formats carries on with garbage: those lines are caught, become the error, and are not
    printed a second time.
    """
    import rawpy  # deferred: only the scripts that decode need LibRaw loaded
    if not os.path.isfile(path):
        raise SidError('%s: raw file not found' % path)
    restore = _capture_fd2()
    raw, error = None, None
    try:
        raw = rawpy.imread(path)
        raw.unpack()
    except rawpy.LibRawFileUnsupportedError:
        error = _unreadable_reason(path)
    except rawpy.LibRawError as e:
        # Opening read the header; what fails after that is the image data.
        error = ('raw data is corrupt or truncated (%s)' if raw is not None else
                 'not a readable raw file (%s)') % type(e).__name__
    except (OSError, ValueError) as e:
        error = 'not a readable raw file (%s)' % type(e).__name__
    finally:
        printed = restore()
    data_errors = [line for line in (printed or '').splitlines() if line.startswith(path + ':')]
    others = [line for line in (printed or '').splitlines() if line not in data_errors]
    if others:  # not LibRaw's data errors: pass them on
        sys.stderr.write('\n'.join(others) + '\n')
    if error is None and data_errors:
        error = 'raw data is corrupt or truncated (LibRaw: %s)' % data_errors[0][len(path) + 1:]
    if error is not None:
        if raw is not None:
            raw.close()
        raise SidError('%s: %s' % (path, error))
    try:
        yield raw
    except rawpy.LibRawError as e:
        raise SidError('%s: raw data is corrupt or truncated (%s)' % (path, type(e).__name__))
    finally:
        raw.close()


def cfa_phase(path, raw):
    """(row, column) of the red pixel in the visible mosaic's first 2x2 cell.

    Anything that is not an RGB Bayer mosaic is refused in plain words: the U-Net sees 2x2 cells.
    """
    import rawpy
    if raw.raw_type != rawpy.RawType.Flat:
        if path.lower().endswith('.dng'):
            raise SidError('%s: linear DNG: already demosaiced, no CFA' % path)
        raise SidError('%s: already demosaiced raw (e.g. sRAW/mRAW): no CFA' % path)
    if raw.num_colors == 1:
        raise SidError('%s: monochrome sensor: no colour filter array' % path)
    pattern = raw.raw_pattern
    if pattern is not None and pattern.shape == XTRANS_PATTERN_SHAPE:
        raise SidError('%s: X-Trans sensor: needs a Fuji model' % path)
    colors = raw.color_desc.decode('ascii', 'replace')
    cell = ''
    if pattern is not None and pattern.shape == (2, 2):
        cell = ''.join(colors[i] if i < len(colors) else '?' for i in pattern.flat)
    if sorted(cell) != sorted('RGGB'):
        raise SidError('%s: not an RGB Bayer sensor (CFA pattern %s, colours %s)'
                       % (path, 'x'.join(map(str, pattern.shape)) if pattern is not None
                          else 'none', colors))
    return divmod(cell.index('R'), 2)


def _check_bayer(path, raw):
    """The paper's path takes RGGB as it is: training pairs mosaics with full-size targets."""
    if cfa_phase(path, raw) != (0, 0):
        colors = raw.color_desc.decode('ascii', 'replace')
        order = ''.join(colors[i] for i in raw.raw_pattern.flat)
        raise SidError('%s: CFA order %s, expected RGGB (scripts/enhance.py reads any Bayer order)'
                       % (path, order))


def read_bayer(path):
    """The visible RGGB mosaic as uint16, plus the paper's (black, white) levels."""
    with open_raw(path) as raw:
        _check_bayer(path, raw)
        # raw_image_visible is a view into LibRaw's buffer: copy it before the file closes.
        bayer = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
    if bayer.ndim != 2 or bayer.shape[0] % 2 or bayer.shape[1] % 2:
        raise SidError('%s: raw size %s is not even in height and width; SID packing needs '
                       '2x2 Bayer cells' % (path, 'x'.join(map(str, bayer.shape))))
    return bayer, (float(BLACK_LEVEL), float(WHITE_LEVEL))


def read_mosaic(path):
    """Any camera's Bayer raw, as recorded: the mosaic, its CFA phase, its levels, its orientation.

    Levels are per packed channel (R, G, B, G after align_bayer), from the file: LibRaw reports
    black levels by colour index (R, G, B, G2), not by position, so each position looks its colour
    up. The white level is LibRaw's per-channel one where the file has it, else the global one.
    """
    with open_raw(path) as raw:
        phase = cfa_phase(path, raw)
        bayer = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
        pattern = raw.raw_pattern
        blacks = raw.black_level_per_channel
        whites = getattr(raw, 'camera_white_level_per_channel', None)
        if not whites or min(whites) <= max(blacks):
            whites = [raw.white_level] * len(blacks)
        colors = [pattern[(y + phase[0]) % 2, (x + phase[1]) % 2] for y, x in BAYER_OFFSETS]
        flip = raw.sizes.flip
    black = np.array([blacks[c] for c in colors], np.float32)
    white = np.array([whites[c] for c in colors], np.float32)
    if (white <= black).any():
        raise SidError('%s: white level %s is not above black level %s'
                       % (path, white.tolist(), black.tolist()))
    return Mosaic(bayer, phase, black, white, flip)


def align_bayer(bayer, phase):
    """The mosaic mirrored out by one pixel where needed so it starts on a red pixel and has even
    height and width: [H + dy + (H + dy) % 2, W + dx + ...], original pixel (0, 0) at (dy, dx).

    Mirroring (not repeating) the edge keeps every pixel's colour: the row added above row 0 is
    row 1, the same colour as the missing row -1. The network then sees a full 2x2 cell at every
    edge, and its output covers the image; crop it with [dy:dy + H, dx:dx + W].
    """
    dy, dx = phase
    height, width = bayer.shape
    pad = ((dy, (height + dy) % 2), (dx, (width + dx) % 2))
    return np.pad(bayer, pad, mode='reflect') if any(sum(p) for p in pad) else bayer


def orient(image, flip):
    """An image turned as the file's orientation says (LibRaw's flip code, as rawpy's
    postprocess turns it): bit 2 transposes, bit 1 flips rows, bit 0 flips columns."""
    if flip & 2:
        image = image[::-1]
    if flip & 1:
        image = image[:, ::-1]
    if flip & 4:
        image = np.swapaxes(image, 0, 1)
    return image


def pack_bayer(bayer):
    """[H, W] RGGB mosaic -> [H/2, W/2, 4] in the paper's channel order R, G, B, G (same dtype)."""
    return np.stack([bayer[y::2, x::2] for y, x in BAYER_OFFSETS], axis=-1)


def normalize(packed, black=BLACK_LEVEL, white=WHITE_LEVEL):
    """Raw counts -> [0, 1] float32 after black subtraction (the paper's scaling).

    black and white are numbers, or per-channel arrays along the last axis (read_mosaic's).
    """
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


def pack_raw(path):
    """The paper's pack_raw: normalised [H/2, W/2, 4] float32 (not yet amplified)."""
    bayer, (black, white) = read_bayer(path)
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


def fail_cleanly(main):
    """Decorator for a script's main(): a SidError ends the run with its one-line message, exit 1."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except SidError as e:
            sys.stderr.write('error: %s\n' % e)
            sys.exit(1)
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
