"""The decoded-raw cache: each raw decoded once into a checksummed uint16 .npy that training
memory-maps and crops.

(train_Sony.py, issue 4) Decoding a raw costs 0.1-1.2 s; a training step needs only a crop.
So each raw is decoded once into an uncompressed .npy of uint16 (packed Bayer counts for a short
exposure, postprocessed 16-bit RGB for a long one) that training memory-maps and crops.

Nothing in the cache is trusted blindly (issue 9):
- The entry's name carries the raw's size, mtime, inode and ctime. `cp -p` and `touch -r` can
  restore size and mtime, but a replaced file gets a new inode or a new ctime (which no user
  tool can set back), so a changed raw gets a new entry and the stale one is deleted.
- An entry is a standard .npy followed by a 12-byte trailer: b'SIDCRC32' and the CRC-32 of every
  byte before it. In the file rather than in a sidecar or in the name because data and checksum
  then arrive in one atomic rename (they can never disagree or be separated, nothing extra to
  clean up), and the exact file size (header + data + trailer) shows truncation without reading
  the data; numpy ignores bytes after the array, so np.load still reads an entry. CRC-32 because
  it is the fastest checksum in the standard library (zlib: 1.4-2.9 GB/s here against about
  1 GB/s for sha1) and catches accidents - bit rot, an interrupted copy, overwritten bytes - which
  is what a cache must survive (it is not a defence against tampering).
- The first open of an entry in a process verifies the checksum; build_cache verifies all of
  training's entries in parallel at start. An entry that fails any check (empty, not a .npy,
  Fortran order, wrong dtype or shape, wrong size, bad checksum) is rebuilt with one line saying
  why, never used.
"""
import contextlib
import os
import struct
import zlib
from collections import namedtuple

import numpy as np

import cli
from cli import SidError
from safe_files import atomic_write
from raw_io import PACKINGS, develop, read_bayer_cells, read_packed

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
        pool = cli.process_pool(workers, initializer=_ignore_sigint)
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
