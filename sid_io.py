"""Raw and list I/O shared by training, testing and the dataset scripts.

Everything that touches a raw file goes through rawpy, so generated DNGs and real Sony ARWs take
the same path. Errors are `SidError`s whose message is one line naming the offending file (and
line, for list files); scripts print it and exit non-zero.
"""
import contextlib
import errno
import os
import re
import struct
import sys
import tempfile
import zlib
from collections import namedtuple

import numpy as np

# Sony A7S II (the paper's camera): 14-bit raw with a black level of 512.
BLACK_LEVEL = 512
WHITE_LEVEL = 16383
MAX_RATIO = 300  # the paper caps the amplification ratio
GT_SCALE = 65535.0  # rawpy postprocess with output_bps=16
# The paper's development of the long exposure into the ground truth, in the sensor's
# orientation (user_flip=0): LibRaw otherwise turns its output by the file's EXIF orientation
# (3: 180 degrees at the same size, silently) while the packed input is never turned. For the
# unrotated files of the SID set this is exactly the paper's postprocess call.
GT_POSTPROCESS = dict(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16,
                      user_flip=0)
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
# float32 black and white level per packed channel (R, G, B, G; one level for X-Trans), LibRaw's
# orientation code, and the colour filter: 'bayer' or 'xtrans' (a key of PACKINGS).
Mosaic = namedtuple('Mosaic', 'counts phase black white flip cfa')

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
    """Pairs of a SID list file (`short long ISO F` per line, paths relative to `data_dir`).

    Every line must make sense as a pair, or training would silently learn from it: the short
    exposure under no `long/` folder and the long one under no `short/` folder (columns swapped),
    both of the same scene, the short exposure strictly shorter (ratio long / short > 1), and no
    short exposure listed twice (it would be drawn twice as often).
    """
    pairs, listed = [], {}
    for number, text in enumerate(_read_text_lines(list_path), 1):
        if not text.strip():
            continue
        where = '%s:%d' % (list_path, number)
        fields = text.split()
        if len(fields) != 4:
            raise SidError('%s: expected 4 fields "short long ISO F", found %d'
                           % (where, len(fields)))
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
        _check_pair(where, short, long_)
        if short in listed:
            raise SidError('%s: short exposure %s is already paired on line %d'
                           % (where, short, listed[short]))
        listed[short] = number
        if check_files:
            for path in (short, long_):
                if not os.path.isfile(path):
                    raise SidError('%s: file not found: %s' % (where, path))
        pairs.append(Pair(short, long_, iso, fnumber, number))
    return pairs


def _read_text_lines(list_path):
    """The lines of a UTF-8 list file, without the byte-order mark some editors put first."""
    try:
        with open(list_path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise SidError('%s: cannot read list file (%s)' % (list_path, e.strerror or e))
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        # e.object is what was decoded (without a BOM); the text before the bad byte decodes,
        # and a character in the bad byte's place gives its line number.
        line = len((e.object[:e.start].decode('utf-8') + '?').splitlines())
        raise SidError('%s:%d: not a UTF-8 text list file (byte 0x%02x)'
                       % (list_path, line, e.object[e.start]))
    if '\0' in text:
        line = len(text[:text.index('\0') + 1].splitlines())
        raise SidError('%s:%d: not a text list file (NUL byte)' % (list_path, line))
    return text.splitlines()


def _check_pair(where, short, long_):
    for path, column, other in ((short, 'short', 'long'), (long_, 'long', 'short')):
        if os.path.basename(os.path.dirname(path)).lower() == other:
            raise SidError('%s: the %s-exposure column names %s, in a %s/ folder: are the two '
                           'columns swapped?' % (where, column, path, other))
    (short_scene, _, short_time), (long_scene, _, long_time) = parse_name(short), parse_name(long_)
    if short_scene != long_scene:
        raise SidError('%s: short exposure of scene %05d paired with the long exposure of scene '
                       '%05d' % (where, short_scene, long_scene))
    if not long_time > short_time:
        raise SidError('%s: short exposure %gs is not shorter than the long exposure %gs (the '
                       'ratio long / short must be > 1)' % (where, short_time, long_time))


def format_list_line(short_rel, long_rel, iso, fnumber):
    """One line in the official format: `./Sony/short/x.ARW ./Sony/long/y.ARW ISO200 F8`."""
    return '%s %s ISO%d F%s' % (short_rel, long_rel, iso, ('%g' % fnumber))


TEMP_PREFIX = '.tmp-'  # hidden temporaries; a dead run's leftovers are recognisable by it
TEMP_NAME_ATTEMPTS = 100
TEMP_RE = re.compile(r'^%s[0-9a-f]{8}-(.+)$' % re.escape(TEMP_PREFIX))  # _new_temp's names
SHORT_WRITE_RE = re.compile(r'(\d+) requested and (\d+) written')
DIR_FSYNC_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP)


def write_reason(error, folder):
    """Why an OSError stopped a write, in words that say what to do (a full disk names itself)."""
    if error.errno == errno.ENOSPC or _short_write_on_full_disk(error, folder):
        return 'no space left on %s' % folder
    if error.errno == getattr(errno, 'EDQUOT', None):
        return 'disk quota exceeded on %s' % folder
    if error.errno == errno.EEXIST and os.path.exists(folder) and not os.path.isdir(folder):
        return '%s is a file, not a folder' % folder
    return error.strerror or str(error)


def _short_write_on_full_disk(error, folder):
    """numpy's tofile (tifffile writes with it) reports a full disk as an OSError without errno,
    '<n> requested and <m> written': it is one when the folder has less room than the rest."""
    found = SHORT_WRITE_RE.search(str(error)) if error.errno is None else None
    if found is None:
        return False
    import shutil
    try:
        return shutil.disk_usage(folder).free < int(found.group(1)) - int(found.group(2))
    except OSError:
        return False


def _new_temp(folder, name, directory=False):
    """Create an empty, unused hidden file (or folder) `.tmp-<random>-<name>` in `folder`.

    Created with mode 0o666 (0o777) like any file, so the kernel applies the umask (and default
    ACLs); tempfile.mkstemp would make every result 0o600, unreadable to anyone else on a shared
    server.
    """
    for _ in range(TEMP_NAME_ATTEMPTS):
        tmp = os.path.join(folder, '%s%s-%s' % (TEMP_PREFIX, os.urandom(4).hex(), name))
        try:
            if directory:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, 'no unused temporary name', folder)


def new_temp_folder(parent, name):
    """An empty hidden folder `.tmp-<random>-<name>` in `parent`, to build a unit of files in
    before replace_folder puts it in place; remove_temporaries deletes it after a kill."""
    return _new_temp(parent, name, directory=True)


def remove_temporaries(folder, owned):
    """Delete the `.tmp-<random>-<name>` files and folders that killed runs left in `folder`,
    those whose <name> `owned(name)` accepts (other programs' temporaries stay); returns their
    names. Only for a folder this process holds the lock of (lock_folder)."""
    import shutil
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        found = TEMP_RE.match(name)
        if not found or not owned(found.group(1)):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed.append(name)
    return removed


def _fsync(path, folder=False):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if not (folder and e.errno in DIR_FSYNC_UNSUPPORTED):  # some filesystems cannot
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, fsync=True):
    """A temporary name next to `path` (same extension) that becomes `path` if the block succeeds.

    Readers never see a half-written file, and a crash leaves at worst a hidden `.tmp-*` file. The
    file gets the mode of any new file (0o666 less the umask). With fsync the data, then the
    rename, reach the disk before this returns, so after a power loss `path` is absent, old or
    whole - never empty (ext4 and xfs may otherwise commit the rename before the data). An
    OSError while creating, writing or renaming (no permission, disk full, a file where a folder
    should be) becomes a one-line SidError naming `path`, and the temporary is removed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        tmp = _new_temp(folder, os.path.basename(path))
    except OSError as e:
        raise SidError('%s: cannot write (%s)' % (path, write_reason(e, folder)))
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
        if fsync:
            _fsync(folder, folder=True)
    except BaseException as e:
        reason = write_reason(e, folder) if isinstance(e, OSError) else None  # disk still full
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if reason is not None:
            raise SidError('%s: cannot write (%s)' % (path, reason))
        raise


@contextlib.contextmanager
def atomic_write(path, mode='wb', fsync=True):
    """Like open(path, mode) for writing, through atomic_path."""
    with atomic_path(path, fsync) as tmp:
        with open(tmp, mode) as f:
            yield f


def write_list(lines, path):
    with atomic_write(path) as f:
        f.write(''.join(line + '\n' for line in lines).encode('utf-8'))


def require_writable_dir(path, what):
    """Create folder `path` if needed and prove that files can be created in it.

    Called before long work whose results go there (a cache build, an epoch of training), so that
    a wrong or read-only folder fails in one line at start, not with a traceback hours later.
    """
    try:
        os.makedirs(path, exist_ok=True)
        os.remove(_new_temp(path, 'writable'))
    except OSError as e:
        raise SidError('%s: cannot write %s (%s)' % (path, what, write_reason(e, path)))


RENAME_EXCHANGE = 2  # renameat2(2) flag: swap two paths in one step (Linux >= 3.15)
AT_FDCWD = -100
DIGEST_CHUNK = 1 << 20


def _exchange(a, b):
    """Swap paths a and b atomically (Linux renameat2 RENAME_EXCHANGE); False where the C library
    (glibc < 2.28, not Linux) or the filesystem cannot."""
    import ctypes
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)


def replace_folder(new, path):
    """Put the folder `new` (a sibling of `path`, from new_temp_folder) at `path`, replacing what is
    there as one unit; returns where the old folder went (for the caller to delete), or None.

    Readers of `path` see the complete old folder or the complete new one, never a mix: on Linux
    the two are swapped in one step. Elsewhere the old one is first renamed away, so a kill
    between the two renames leaves `path` absent (both folders stay as `.tmp-*` siblings, which
    the next run's remove_temporaries deletes). `new` should be synced first (fsync_tree).
    """
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.lexists(path):
        os.rename(new, path)
        old = None
    elif _exchange(new, path):
        old = new
    else:
        old = new_temp_folder(parent, os.path.basename(os.path.abspath(path)))
        os.rename(path, old)  # onto the empty folder just made: POSIX allows it
        os.rename(new, path)
    _fsync(parent, folder=True)
    return old


def fsync_tree(folder):
    """Every file in `folder`, then every folder in it, on disk: after a power loss a folder put in
    place by replace_folder is whole, never holds empty files."""
    for top, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            _fsync(os.path.join(top, name))
        _fsync(top, folder=True)


def file_digest(path):
    """'sha256:<hex>' of a file's content, read in chunks."""
    import hashlib
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(DIGEST_CHUNK), b''):
            digest.update(chunk)
    return 'sha256:' + digest.hexdigest()


LOCK_NAME = '.sid.lock'  # in a folder one run writes to: who holds it, while it runs
_locked = set()  # real paths of the lock files this process holds


def lock_folder(folder, flag, lock_path=None):
    """Make this process the only run writing to `folder` until it exits, or stop in one line.

    Runs clean their folder of a dead run's temporaries at start and keep only the newest
    checkpoints: a second run on the same folder would delete the first one's files under it.
    The lock is flock(2) on `folder`/.sid.lock: the kernel drops it when the process ends, even
    by kill -9, so it is never stale. The file names its holder for the error message and is
    deleted at a normal exit. Without fcntl (not POSIX) there is no lock, as before. Taking a
    folder this process already holds does nothing. `lock_path` puts the lock file elsewhere: a
    folder that is replaced as a whole (replace_folder) is locked from beside it.
    """
    try:
        import fcntl
    except ImportError:
        return
    path = lock_path or os.path.join(folder, LOCK_NAME)
    if os.path.realpath(path) in _locked:
        return
    import atexit
    import socket
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise SidError('%s: cannot write its lock file %s (%s)'
                           % (folder, path, write_reason(e, os.path.dirname(path))))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 256).decode('utf-8', 'replace').strip() or 'another run'
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise SidError('%s: cannot lock %s (%s)' % (folder, path, e.strerror))
            raise SidError('%s: in use by %s; wait for it to end or give %s another folder'
                           % (folder, holder, flag))
        try:  # the file a holder unlinked at its exit, after we opened it, is no lock
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, ('%s (pid %d on %s)\n' % (os.path.basename(sys.argv[0]), os.getpid(),
                                           socket.gethostname())).encode('utf-8'))

    def release():
        try:
            os.remove(path)  # while still holding it: the next run creates a new one
        except OSError:
            pass
        os.close(fd)
    atexit.register(release)
    _locked.add(os.path.realpath(path))


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
    if os.path.isdir(path):
        raise SidError('%s: is a folder, not a raw file' % path)
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


def is_xtrans(raw):
    """rawpy reports an X-Trans raw with a 6x6 raw_pattern (Bayer: 2x2); its raw_type, num_colors
    and color_desc are those of a Bayer raw."""
    return raw.raw_pattern is not None and raw.raw_pattern.shape == XTRANS_PATTERN_SHAPE


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
    if is_xtrans(raw):
        raise SidError('%s: X-Trans sensor: needs a Fuji model' % path)
    pattern = raw.raw_pattern
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
    """Any camera's raw, as recorded: the mosaic, its CFA phase, its levels, its orientation.

    Bayer levels are per packed channel (R, G, B, G after align_bayer), from the file: LibRaw
    reports black levels by colour index (R, G, B, G2), not by position, so each position looks its
    colour up. The white level is LibRaw's per-channel one where the file has it, else the global
    one. An X-Trans raw (a 6x6 raw_pattern) must be in the X-T2 phase the 9-channel packing
    assumes (check_xtrans); its levels are the file's overall ones.
    """
    with open_raw(path) as raw:
        counts = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
        flip = raw.sizes.flip
        if is_xtrans(raw):
            check_xtrans(path, raw)
            return Mosaic(counts, (0, 0), np.float32(np.mean(raw.black_level_per_channel)),
                          np.float32(raw.white_level), flip, 'xtrans')
        phase = cfa_phase(path, raw)
        pattern = raw.raw_pattern
        blacks = raw.black_level_per_channel
        whites = getattr(raw, 'camera_white_level_per_channel', None)
        if not whites or min(whites) <= max(blacks):
            whites = [raw.white_level] * len(blacks)
        colors = [pattern[(y + phase[0]) % 2, (x + phase[1]) % 2] for y, x in BAYER_OFFSETS]
    black = np.array([blacks[c] for c in colors], np.float32)
    white = np.array([whites[c] for c in colors], np.float32)
    if (white <= black).any():
        raise SidError('%s: white level %s is not above black level %s'
                       % (path, white.tolist(), black.tolist()))
    return Mosaic(counts, phase, black, white, flip, 'bayer')


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


# ---------------------------------------------------------------- Fuji X-Trans (X-T2)
# The paper's second camera. Its 6x6 X-Trans CFA is packed, as the authors' Fuji code packs it,
# into 9 channels at a third of the resolution (one packed pixel per 3x3 raw cell), so the Fuji
# U-Net ends in depth_to_space with a block of 3. The channels' meaning depends on the CFA phase,
# hence the check against the X-T2's phase below.

FUJI_BLACK_LEVEL = 1024
FUJI_WHITE_LEVEL = 16383
XTRANS_PERIOD = 6  # the CFA repeats every 6 x 6 sites: packing crops H and W down to a multiple
XTRANS_BLOCK = 3  # a packed pixel covers 3 x 3 raw sites
# The X-T2's CFA (0 R, 1 G, 2 B) with its 6x6 tile at the top-left of raw_image_visible.
XTRANS_CFA = ((0, 2, 1, 2, 0, 1),
              (1, 1, 0, 1, 1, 2),
              (1, 1, 2, 1, 1, 0),
              (2, 0, 1, 0, 2, 1),
              (1, 1, 2, 1, 1, 0),
              (1, 1, 0, 1, 1, 2))
# Channels 0-4: the sites (row, col) inside each 6x6 tile that packed pixels (2i, 2j), (2i, 2j+1),
# (2i+1, 2j), (2i+1, 2j+1) take from tile (i, j). Colours: R, G, B, R, B.
XTRANS_TILE_SITES = (((0, 0), (0, 4), (3, 1), (3, 3)),
                     ((0, 2), (0, 5), (3, 2), (3, 5)),
                     ((0, 1), (0, 3), (3, 0), (3, 4)),
                     ((1, 2), (2, 5), (5, 2), (4, 5)),
                     ((2, 2), (1, 5), (4, 2), (5, 5)))
XTRANS_QUADRANTS = ((0, 0), (0, 1), (1, 0), (1, 1))
# Channels 5-8: the four greens at (row, col) of every 3x3 cell, one per packed pixel.
XTRANS_CELL_SITES = ((1, 0), (1, 1), (2, 0), (2, 1))


def check_xtrans(path, raw):
    """Refuse a raw whose CFA is not the X-T2's X-Trans in the phase pack_xtrans assumes.

    An X-Trans raw is one whose rawpy raw_pattern is 6x6 (Bayer raws report 2x2).
    """
    colors = raw.color_desc.decode('ascii', 'replace')
    pattern = raw.raw_pattern
    if raw.num_colors != 3 or pattern is None or pattern.shape != (XTRANS_PERIOD,) * 2:
        raise SidError('%s: not a 6x6 X-Trans raw (colors %s, CFA pattern %s)'
                       % (path, colors, 'none' if pattern is None else
                          'x'.join(map(str, pattern.shape))))
    found = '/'.join(''.join(colors[c] for c in row) for row in pattern)
    expected = '/'.join(''.join('RGB'[c] for c in row) for row in XTRANS_CFA)
    if found != expected:
        raise SidError('%s: X-Trans CFA is %s, expected the X-T2 phase %s that the 9-channel '
                       'packing assumes' % (path, found, expected))


def pack_xtrans(raw):
    """[H, W] X-T2 mosaic -> [H/3, W/3, 9] after cropping H, W down to multiples of 6 (same dtype).

    The authors' Fuji packing: channels 0-4 take the R, G, B, R, B sites of XTRANS_TILE_SITES
    (four per 6x6 tile, arranged 2x2), channels 5-8 the four greens of every 3x3 cell.
    """
    height = raw.shape[0] // XTRANS_PERIOD * XTRANS_PERIOD
    width = raw.shape[1] // XTRANS_PERIOD * XTRANS_PERIOD
    raw = raw[:height, :width]
    out = np.empty((height // XTRANS_BLOCK, width // XTRANS_BLOCK,
                    len(XTRANS_TILE_SITES) + len(XTRANS_CELL_SITES)), dtype=raw.dtype)
    for c, sites in enumerate(XTRANS_TILE_SITES):
        for (a, b), (y, x) in zip(XTRANS_QUADRANTS, sites):
            out[a::2, b::2, c] = raw[y::XTRANS_PERIOD, x::XTRANS_PERIOD]
    for c, (y, x) in enumerate(XTRANS_CELL_SITES, len(XTRANS_TILE_SITES)):
        out[..., c] = raw[y::XTRANS_BLOCK, x::XTRANS_BLOCK]
    return out


def read_xtrans(path):
    """The visible X-T2 mosaic as uint16 (CFA phase checked), at least one 6x6 repeat."""
    with open_raw(path) as raw:
        check_xtrans(path, raw)
        mosaic = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
    if min(mosaic.shape) < XTRANS_PERIOD:
        raise SidError('%s: raw size %s is smaller than one 6x6 X-Trans repeat'
                       % (path, 'x'.join(map(str, mosaic.shape))))
    return mosaic


def align_xtrans(mosaic, phase):
    """The mosaic extended at the bottom and right to multiples of 6, so that packing crops none
    of its pixels: [ceil6(H), ceil6(W)], original pixel (0, 0) at (0, 0).

    Each added row (column) repeats the one 6 before it, the same colours in the X-Trans repeat
    (reflection would not keep them). The enhance command uses this; the paper's train and test
    path crops instead (pack_xtrans).
    """
    if tuple(phase) != (0, 0):
        raise ValueError('X-Trans mosaics are read in the X-T2 phase only, got phase %s'
                         % (phase,))
    rows, cols = (np.arange(-(-n // XTRANS_PERIOD) * XTRANS_PERIOD) for n in mosaic.shape)
    rows[mosaic.shape[0]:] -= XTRANS_PERIOD
    cols[mosaic.shape[1]:] -= XTRANS_PERIOD
    if len(rows) == mosaic.shape[0] and len(cols) == mosaic.shape[1]:
        return mosaic
    return mosaic[np.ix_(rows, cols)]


# ---------------------------------------------------------------- the packings
# What camera.py's profiles name as their `packing`: how a raw of that colour filter is read for
# the train and test path (read: CFA and size checked, uint16), checked when developed (check),
# brought to whole repeats for the enhance command (align), packed (pack), the multiple its height
# and width are cropped down to by the packing, the packed channels, the decoded-raw cache's kinds
# for its packed input and its developed target, the kind of its per-channel levels (None: the
# profile's constants need none), and how the developed image (GT_POSTPROCESS) is cut like the
# packed mosaic (cut_developed(path, raw, rgb)), so that ground truth and input stay aligned pixel
# for pixel.
Packing = namedtuple('Packing', 'read check align pack multiple channels cache_kinds levels_kind '
                                'cut_developed')


def _read_rggb(path):
    return read_bayer(path)[0]


def _cut_to_multiple(multiple):
    """cut_developed of the paper's packings: bottom and right cropped to `multiple`, as their
    packing crops the mosaic (pack_xtrans to multiples of 6; even Bayer raws lose nothing)."""
    def cut(path, raw, rgb):
        height, width = (n // multiple * multiple for n in rgb.shape[:2])
        return rgb if (height, width) == rgb.shape[:2] else rgb[:height, :width]
    return cut


def cut_to_red(image, phase):
    """An image on the mosaic's grid cut to whole RGGB cells: from the red pixel at `phase` (row,
    column of the first 2x2 cell), even height and width. At most one row or column goes at each
    side, and a mosaic in any CFA phase becomes an RGGB one."""
    dy, dx = phase
    height, width = (image.shape[0] - dy) // 2 * 2, (image.shape[1] - dx) // 2 * 2
    return image[dy:dy + height, dx:dx + width]


def read_bayer_cells(path):
    """Any Bayer raw for training and testing with its own levels: read_mosaic's mosaic cut to
    whole RGGB cells (cut_to_red), so phase (0, 0); levels per packed channel, as read_mosaic
    gives them for the enhance command (the same R, G, B, G sites)."""
    mosaic = read_mosaic(path)
    if mosaic.cfa != 'bayer':
        raise SidError('%s: X-Trans sensor: train and test it with --camera=Fuji' % path)
    counts = np.ascontiguousarray(cut_to_red(mosaic.counts, mosaic.phase))
    return mosaic._replace(counts=counts, phase=(0, 0))


def _cut_developed_to_red(path, raw, rgb):
    """The developed image cut as read_bayer_cells cuts the mosaic; it must have the mosaic's
    size (LibRaw stretches raws with non-square pixels, which cannot pair pixel for pixel)."""
    visible = raw.raw_image_visible.shape
    if rgb.shape[:2] != visible:
        raise SidError('%s: developed size %dx%d differs from the raw mosaic\'s %dx%d (non-square '
                       'pixels?): ground truth and input cannot be aligned'
                       % (path, rgb.shape[1], rgb.shape[0], visible[1], visible[0]))
    return cut_to_red(rgb, cfa_phase(path, raw))


def _check_any_bayer(path, raw):
    cfa_phase(path, raw)


PACKINGS = {
    'bayer': Packing(_read_rggb, _check_bayer, align_bayer, pack_bayer, 2, len(BAYER_OFFSETS),
                     ('input', 'gt'), None, _cut_to_multiple(2)),
    # Any Bayer camera with the file's levels (camera.BAYER): the mosaic cut to start on its red
    # pixel with even sides, the ground truth cut identically in the sensor's orientation.
    'bayer_any': Packing(lambda path: read_bayer_cells(path).counts, _check_any_bayer,
                         align_bayer, pack_bayer, 2, len(BAYER_OFFSETS),
                         ('bayer_any_input', 'bayer_any_gt'), 'bayer_any_levels',
                         _cut_developed_to_red),
    'xtrans': Packing(read_xtrans, check_xtrans, align_xtrans, pack_xtrans, XTRANS_PERIOD,
                      len(XTRANS_TILE_SITES) + len(XTRANS_CELL_SITES),
                      ('xtrans_input', 'xtrans_gt'), None, _cut_to_multiple(XTRANS_PERIOD)),
}


def read_packed(path, packing='bayer'):
    """A raw's packed counts (uint16, not normalised): what the cache's input kinds hold."""
    spec = PACKINGS[packing]
    return spec.pack(spec.read(path))


def develop(path, packing='bayer'):
    """The paper's ground truth as uint16 RGB: postprocess, cut as the packing cuts the mosaic
    (cut_developed: to the packed size x block, as the authors' Fuji code crops its ground truth
    to the network's output; a no-op for even-sized RGGB raws)."""
    with open_raw(path) as raw:
        PACKINGS[packing].check(path, raw)
        return _developed(path, raw, packing)


def _developed(path, raw, packing):
    """An open raw postprocessed with the paper's flags, cut as the packing cuts its mosaic."""
    return PACKINGS[packing].cut_developed(path, raw, raw.postprocess(**GT_POSTPROCESS))


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


def postprocess(path, packing='bayer', **overrides):
    """rawpy postprocess with the paper's ground-truth flags -> uint16 [H, W, 3], of a raw with
    the colour filter of `packing` (a PACKINGS key)."""
    args = dict(GT_POSTPROCESS, **overrides)
    with open_raw(path) as raw:
        PACKINGS[packing].check(path, raw)
        rgb = raw.postprocess(**args)
    return rgb


def read_ground_truth(path):
    """The long exposure as the paper's target: postprocessed sRGB in [0, 1] float32."""
    return postprocess(path).astype(np.float32) / np.float32(GT_SCALE)


def develop_amplified(path, ratio, packing='bayer'):
    """The network's input as a picture: raw counts above black times `ratio`, clipped at white
    (as pack_raw + amplify clip at 1), developed and cropped like the ground truth (develop) ->
    uint16 [H, W, 3].

    Uses the file's own levels and any CFA of `packing`'s kind, so it shows raws as they are:
    each site's own black (a camera whose blacks differ by a count or two per site would get a
    colour cast of ratio times that from one mean black).
    """
    with open_raw(path) as raw:
        counts = raw.raw_image_visible  # LibRaw's buffer: postprocess develops what is written here
        black = np.asarray(raw.black_level_per_channel, np.float32)[raw.raw_colors_visible]
        bright = (counts.astype(np.float32) - black) * np.float32(ratio) + black
        counts[:] = np.clip(bright, 0, raw.white_level)
        return _developed(path, raw, packing)


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


_sigints_seen = []


def _note_sigint(signum, frame):
    """Python's own Ctrl-C behaviour (KeyboardInterrupt), plus a note of it: library code that
    swallows the exception on its way up (a bare except, a C API that clears errors) cannot make
    the run forget the Ctrl-C (raise_if_interrupted)."""
    del frame
    _sigints_seen.append(signum)
    raise KeyboardInterrupt


def raise_if_interrupted():
    """Raise again a Ctrl-C that arrived but was swallowed before it reached fail_cleanly: called
    where a script replaces the SIGINT handler with its own (train_Sony.py's loop)."""
    if _sigints_seen:
        raise KeyboardInterrupt


def _from_interrupt(error):
    """Whether `error` is a Ctrl-C in disguise: TF 1.15's C API turns a KeyboardInterrupt raised
    inside it into `SystemError: ... returned a result with an error set`, caused by it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def fail_cleanly(main):
    """Decorator for a script's main(): a SidError ends the run with its one-line message, exit 1;
    Ctrl-C (SIGINT, where the script has no handler of its own) with one line, exit 130."""
    import functools
    import signal
    import sys
    import threading

    def interrupted():
        # The cleanup that matters (temporaries removed, worker pools terminated) ran in the
        # `finally`s the interrupt passed through. Interpreter teardown would add tracebacks
        # of objects it interrupted half-built (a progress bar's __del__), so skip it.
        sys.stdout.flush()
        sys.stderr.write('error: interrupted (SIGINT)\n')
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, _note_sigint)
        try:
            return main(*args, **kwargs)
        except SidError as e:
            sys.stderr.write('error: %s\n' % e)
            sys.exit(1)
        except KeyboardInterrupt:
            interrupted()
        except Exception as e:
            if _from_interrupt(e):
                interrupted()
            raise
    return wrapper


# ================================================================ decoded-raw cache
# (train_Sony.py, issue 4) Decoding a raw costs 0.1-1.2 s; a training step needs only a crop.
# So each raw is decoded once into an uncompressed .npy of uint16 (packed Bayer counts for a short
# exposure, postprocessed 16-bit RGB for a long one) that training memory-maps and crops.
#
# Nothing in the cache is trusted blindly (issue 9):
# - The entry's name carries the raw's size, mtime, inode and ctime. `cp -p` and `touch -r` can
#   restore size and mtime, but a replaced file gets a new inode or a new ctime (which no user
#   tool can set back), so a changed raw gets a new entry and the stale one is deleted.
# - An entry is a standard .npy followed by a 12-byte trailer: b'SIDCRC32' and the CRC-32 of every
#   byte before it. In the file rather than in a sidecar or in the name because data and checksum
#   then arrive in one atomic rename (they can never disagree or be separated, nothing extra to
#   clean up), and the exact file size (header + data + trailer) shows truncation without reading
#   the data; numpy ignores bytes after the array, so np.load still reads an entry. CRC-32 because
#   it is the fastest checksum in the standard library (zlib: 1.4-2.9 GB/s here against about
#   1 GB/s for sha1) and catches accidents - bit rot, an interrupted copy, overwritten bytes - which
#   is what a cache must survive (it is not a defence against tampering).
# - The first open of an entry in a process verifies the checksum; build_cache verifies all of
#   training's entries in parallel at start. An entry that fails any check (empty, not a .npy,
#   Fortran order, wrong dtype or shape, wrong size, bad checksum) is rebuilt with one line saying
#   why, never used.

CACHE_VERSION = 2  # bump when the decoded content or the entry format changes
# Kind -> (packing, part): 0 packed counts (read_packed), 1 developed RGB (develop), 2 the packed
# channels' black and white levels (levels_entry), all uint16. The kind is part of an entry's name,
# so a raw's decodings for different packings can never be mixed up; the RGGB kinds of the paper's
# constant levels kept their names ('input', 'gt') from before X-Trans.
PACKED, DEVELOPED, LEVELS = 0, 1, 2
CACHE_KINDS = dict((kind, (name, part)) for name, p in sorted(PACKINGS.items())
                   for part, kind in enumerate(p.cache_kinds + (p.levels_kind,)) if kind)
CACHE_CHANNELS = dict((kind, (PACKINGS[name].channels, 3, PACKINGS[name].channels)[part])
                      for kind, (name, part) in CACHE_KINDS.items())
LEVELS_ROWS = 2  # a levels entry is [2, 1, channels]: black, then white, per packed channel
Levels = namedtuple('Levels', 'black white')  # float32 per packed channel, as Mosaic's
CACHE_DTYPE = np.dtype(np.uint16)
CACHE_TRAILER = struct.Struct('<8sI')  # magic, CRC-32 of everything before the trailer
CACHE_MAGIC = b'SIDCRC32'
CHECKSUM_CHUNK = 8 << 20  # bytes read at a time while verifying
MISSING = 'missing'

_verified = set()  # cache entries whose checksum this process has verified (or written)


def _cache_stem(raw_path, kind, cache_dir, data_dir):
    """The cache path of `raw_path` without its stamp: the raw's path below data_dir, mirrored."""
    if kind not in CACHE_KINDS:
        raise ValueError('cache kind must be one of %s, got %r' % (', '.join(CACHE_KINDS), kind))
    raw_path, data_dir = os.path.abspath(raw_path), os.path.abspath(data_dir)
    rel = os.path.relpath(raw_path, data_dir)
    if rel.startswith(os.pardir):  # a raw outside data_dir: mirror its absolute path
        rel = os.path.join('_outside', raw_path.lstrip(os.sep))
    return os.path.join(cache_dir, rel + '.' + kind)


def cache_file(raw_path, kind, cache_dir, data_dir):
    """Where the decoded `kind` of `raw_path` lives:
    <stem>.v<version>-<size>-<mtime ns>-<inode>-<ctime ns>.npy."""
    try:
        st = os.stat(raw_path)
    except OSError as e:
        raise SidError('%s: raw file not found (%s)' % (raw_path, e.strerror or e))
    stamp = 'v%d-%d-%d-%d-%d' % (CACHE_VERSION, st.st_size, st.st_mtime_ns, st.st_ino,
                                 st.st_ctime_ns)
    return '%s.%s.npy' % (_cache_stem(raw_path, kind, cache_dir, data_dir), stamp)


def _entry_kind(path):
    """The kind ('input', 'gt', ...) from an entry name <raw name>.<kind>.<stamp>.npy."""
    parts = os.path.basename(path).split('.')
    if len(parts) < 4 or parts[-3] not in CACHE_KINDS:
        raise SidError('%s: not a cache entry name (<raw>.<%s>.<stamp>.npy)'
                       % (path, '|'.join(CACHE_KINDS)))
    return parts[-3]


def decode_for_cache(raw_path, kind):
    """The array a cache entry holds: uint16 packed counts [H/b, W/b, channels], RGB [H, W, 3] or
    levels [2, 1, channels]."""
    packing, part = CACHE_KINDS[kind]
    if part == PACKED:
        return np.ascontiguousarray(read_packed(raw_path, packing))
    if part == LEVELS:  # the file-levels Bayer packing's (X-Trans levels are constants)
        return levels_entry(raw_path, read_bayer_cells(raw_path))
    return np.ascontiguousarray(develop(raw_path, packing), dtype=np.uint16)


def levels_entry(path, mosaic):
    """A Bayer mosaic's black and white level per packed channel as a cache entry's array."""
    levels = np.stack([mosaic.black, mosaic.white]).reshape(LEVELS_ROWS, 1, -1)
    if levels.min() < 0 or levels.max() > np.iinfo(CACHE_DTYPE).max or \
            (levels != np.round(levels)).any():
        raise SidError('%s: levels %s are not whole 16-bit counts'
                       % (path, levels.ravel().tolist()))
    return levels.astype(CACHE_DTYPE)


def read_levels_entry(path):
    """Levels(black, white) of a levels cache entry: float32 per packed channel, the values
    read_mosaic gives for its raw."""
    black, white = np.asarray(open_cached(path), np.float32)[:, 0]
    return Levels(black, white)


def write_cache_entry(path, array):
    """array as .npy plus the checksum trailer, atomically and durably (fsync)."""
    with atomic_write(path, 'w+b') as f:
        np.save(f, array)
        header = f.tell() - array.nbytes
        f.seek(0)
        crc = zlib.crc32(array, zlib.crc32(f.read(header)))
        f.seek(0, os.SEEK_END)
        f.write(CACHE_TRAILER.pack(CACHE_MAGIC, crc))
    _verified.add(path)


def cache_entry_problem(path, kind, verify=True):
    """Why the cache entry `path` cannot be used (a short phrase), or None if it can.

    verify=False checks only what the header and the file size tell (no data is read); verify=True
    also recomputes the checksum.
    """
    if not os.path.isfile(path):
        return MISSING
    try:
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return 'empty file'
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                return '.npy format version %d.%d' % version
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(f)
            if dtype != CACHE_DTYPE:
                return 'dtype %s, expected uint16' % dtype.str
            if fortran_order:
                return 'stored in Fortran order'
            if len(shape) != 3 or shape[2] != CACHE_CHANNELS[kind]:
                return 'shape %s, expected (h, w, %d)' % (shape, CACHE_CHANNELS[kind])
            if CACHE_KINDS[kind][1] == LEVELS and shape[:2] != (LEVELS_ROWS, 1):
                return 'shape %s, expected (%d, 1, %d)' % (shape, LEVELS_ROWS, shape[2])
            expected = f.tell() + shape[0] * shape[1] * shape[2] * dtype.itemsize
            if size != expected + CACHE_TRAILER.size:
                return '%s (%d bytes, its header makes %d)' % (
                    'truncated' if size < expected + CACHE_TRAILER.size else 'too long', size,
                    expected + CACHE_TRAILER.size)
            f.seek(expected)
            magic, stored = CACHE_TRAILER.unpack(f.read(CACHE_TRAILER.size))
            if magic != CACHE_MAGIC:
                return 'no checksum trailer'
            if verify:
                computed = _crc32(f, expected)
                if computed != stored:
                    return 'checksum mismatch (data %08x, stored %08x)' % (computed, stored)
    except (OSError, ValueError, EOFError, SyntaxError) as e:  # numpy's unparsable headers
        return 'not a readable .npy (%s)' % str(e).splitlines()[0][:80]
    return None


def _crc32(f, length):
    """CRC-32 of the first `length` bytes of file object f, read in chunks into one buffer."""
    f.seek(0)
    crc, buffer = 0, bytearray(min(CHECKSUM_CHUNK, length))
    view = memoryview(buffer)
    while length:
        n = f.readinto(view[:min(len(buffer), length)])
        if not n:
            raise EOFError('file shrank while being read')
        crc = zlib.crc32(view[:n], crc)
        length -= n
    return crc


def open_cached(path):
    """A read-only memory map of a cache entry (cheap: only the pages a crop touches are read).

    The first open of an entry in a process verifies its checksum (unless build_cache already did,
    for this process); later opens only parse the header.
    """
    if path not in _verified:
        problem = cache_entry_problem(path, _entry_kind(path))
        if problem:
            raise SidError('%s: unusable cache entry (%s); the next cache build rebuilds it'
                           % (path, problem))
        _verified.add(path)
    try:
        array = np.load(path, mmap_mode='r')
    except (OSError, ValueError, EOFError) as e:
        raise SidError('%s: unreadable cache entry (%s); the next cache build rebuilds it'
                       % (path, str(e).splitlines()[0][:80]))
    if array.dtype != CACHE_DTYPE or array.ndim != 3 or not array.flags.c_contiguous:
        raise SidError('%s: cache entry is %s %s, expected C-ordered 3-D uint16; the next cache '
                       'build rebuilds it' % (path, array.dtype, array.shape))
    return array


def build_cache_entry(raw_path, kind, cache_dir, data_dir, verify=True):
    """(entry path, None) if a good entry exists, else decode `raw_path` into a new entry and
    return (entry path, why the old one was rebuilt or None if there was none)."""
    import glob
    path = cache_file(raw_path, kind, cache_dir, data_dir)
    problem = cache_entry_problem(path, kind, verify)
    if problem is None:
        return path, None
    write_cache_entry(path, decode_for_cache(raw_path, kind))
    stem = _cache_stem(raw_path, kind, cache_dir, data_dir)
    for stale in glob.glob(glob.escape(stem) + '.v*.npy'):
        if stale != path:
            with contextlib.suppress(OSError):
                os.remove(stale)
    return path, None if problem == MISSING else problem


def process_pool(processes, initializer=None):
    """A multiprocessing Pool whose workers start from a clean single-threaded process.

    By the time a script needs workers, TensorFlow, OpenBLAS and tqdm have started threads, and
    fork() of a multi-threaded process can deadlock the child (Python 3.12+ warns so; a CI run on
    Python 3.13 hung 600 s in the cache build's pool). A fork server (spawn where there is none)
    never inherits those threads; its price is one interpreter start, well under a second.
    """
    import multiprocessing
    method = 'forkserver' if 'forkserver' in multiprocessing.get_all_start_methods() else 'spawn'
    return multiprocessing.get_context(method).Pool(processes, initializer=initializer)


def _ignore_sigint():
    """Ctrl-C in a terminal reaches the whole process group: the cache build's parent alone
    answers it (one line, the pool terminated) instead of a traceback per worker."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _build_job(job):
    return job, build_cache_entry(*job)


def build_cache(raws, cache_dir, data_dir, workers=0, progress=True, verify=True):
    """Make sure each (raw_path, kind) in `raws` has a good cache entry; {(raw, kind): path}.

    Missing entries are decoded, and with verify every existing one is checksummed, in `workers`
    processes (0: all cores) with a progress bar; bad entries are rebuilt with one line each on
    stderr. An unreadable raw raises its one-line SidError before anything trains.
    """
    import multiprocessing
    import sys
    from tqdm import tqdm
    jobs = sorted(set((raw, kind) for raw, kind in raws))
    done, todo = {}, []
    for raw, kind in jobs:
        path = cache_file(raw, kind, cache_dir, data_dir)
        if not verify and cache_entry_problem(path, kind, verify=False) is None:
            done[(raw, kind)] = path
        else:
            todo.append((raw, kind, cache_dir, data_dir, verify))
    if not todo:
        return done
    workers = min(workers or multiprocessing.cpu_count(), len(todo))
    bar = tqdm(total=len(todo), desc='%s raws into %s' % ('checking or decoding' if verify else
                                                          'decoding', cache_dir),
               unit='file', disable=not progress)
    if workers <= 1:
        results = (_build_job(job) for job in todo)
        pool = None
    else:
        pool = process_pool(workers, initializer=_ignore_sigint)
        results = pool.imap_unordered(_build_job, todo)
    try:
        for job, (path, rebuilt) in results:
            done[job[:2]] = path
            if rebuilt:
                bar.write('cache entry %s: %s; rebuilt it' % (path, rebuilt), file=sys.stderr)
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    if verify:  # checked (or written) by the workers during this call
        _verified.update(done.values())
    return done


def gt_to_float(rgb):
    """uint16 postprocessed RGB (any crop of it) -> the paper's [0, 1] float32 target."""
    out = rgb.astype(np.float32)
    out /= np.float32(GT_SCALE)
    return out
