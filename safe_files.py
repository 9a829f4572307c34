"""Files that are whole or absent: atomic writes, folders replaced as one unit, one run per
folder, and what a failed write says.

Every output of the project goes through here, so a kill, a full disk or a second run on the same
folder never leaves a half-written file where a reader would take it for a whole one. Temporaries
are hidden `.tmp-<random>-<name>` files a later run recognises and removes.
"""
import contextlib
import errno
import os
import re
import sys

from cli import SidError

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
