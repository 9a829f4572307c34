"""safe_files: atomic writes (nothing half-written, one-line reasons, umask, fsync), folders
replaced as a unit, the writable check, one run per output folder."""
import errno
import os
import re

import numpy as np
import pytest

import cli
import make_dataset
import raw_io
import safe_files
import sid_lists


def write_raw(path, bayer, iso=200, fnumber=8.0, exposure=0.1, **camera):
    make_dataset.write_dng(str(path), np.asarray(bayer, dtype=np.uint16), iso, fnumber, exposure,
                           **camera)
    return str(path)


def random_bayer(shape=(48, 64), seed=0):
    # Include values below the black level and at the white level: both clip in pack_raw.
    return np.random.default_rng(seed).integers(0, raw_io.WHITE_LEVEL + 1, size=shape)


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / 'out.txt'
    with pytest.raises(RuntimeError):
        with safe_files.atomic_write(str(target), 'w') as f:
            f.write('half')
            raise RuntimeError('crash')
    assert os.listdir(str(tmp_path)) == []
    with safe_files.atomic_write(str(target), 'w') as f:
        f.write('whole')
    assert target.read_text() == 'whole' and os.listdir(str(tmp_path)) == ['out.txt']


def test_atomic_path_keeps_the_extension_for_format_sniffing_writers(tmp_path):
    with safe_files.atomic_path(str(tmp_path / 'x.png')) as tmp:
        assert tmp.endswith('x.png') and os.path.dirname(tmp) == str(tmp_path)
        open(tmp, 'w').close()
    assert os.listdir(str(tmp_path)) == ['x.png']


def test_atomic_write_respects_the_umask_and_fsyncs_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: synced.append(os.fstat(fd).st_ino) or
                        real_fsync(fd))
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            with safe_files.atomic_write(str(tmp_path / 'r.txt'), 'w') as f:
                f.write('shared')
        finally:
            os.umask(old)
        assert os.stat(str(tmp_path / 'r.txt')).st_mode & 0o777 == mode
        # the data before the rename, then the folder holding the rename
        assert synced == [os.stat(str(tmp_path / 'r.txt')).st_ino, os.stat(str(tmp_path)).st_ino]
        del synced[:]
    with safe_files.atomic_write(str(tmp_path / 'r.txt'), 'w', fsync=False) as f:
        f.write('quick')
    assert synced == []


def test_atomic_write_under_a_file_is_one_line_naming_the_path(tmp_path):
    (tmp_path / 'file').write_text('x')
    target = str(tmp_path / 'file' / 'sub' / 'out.png')
    with pytest.raises(cli.SidError) as e:
        with safe_files.atomic_path(target):
            raise AssertionError('not reached')
    assert str(e.value) == '%s: cannot write (Not a directory)' % target
    target = str(tmp_path / 'file' / 'out.png')  # the folder itself is a file
    with pytest.raises(cli.SidError, match=r'out\.png: cannot write \(.*file is a file, not a '
                       r'folder\)$'):
        with safe_files.atomic_write(target):
            pass


@pytest.mark.parametrize('error, reason', [
    (errno.ENOSPC, 'no space left on {folder}'),
    (errno.EACCES, 'Permission denied'),
    (errno.EIO, 'Input/output error'),
])
def test_atomic_write_failing_mid_write_is_one_line_and_leaves_nothing(tmp_path, error, reason):
    target = str(tmp_path / 'out' / 'report.json')
    with pytest.raises(cli.SidError) as e:
        with safe_files.atomic_write(target, 'w') as f:
            f.write('half')
            raise OSError(error, os.strerror(error))  # what a full or failing disk raises
    assert str(e.value) == '%s: cannot write (%s)' % (
        target, reason.format(folder=str(tmp_path / 'out')))
    assert os.listdir(str(tmp_path / 'out')) == []


@pytest.mark.parametrize('free, reason', [(4096, 'no space left on {folder}'),
                                          (1 << 30, '73728 requested and 10104 written')])
def test_a_short_write_is_no_space_left_when_the_disk_is_full(tmp_path, monkeypatch, free,
                                                              reason):
    """Issue 16, case 12: numpy's tofile, tifffile's writer, reports a full disk as an OSError
    without errno, '73728 requested and 10104 written'. With room left it is something else (a
    file size limit), and its own words stay."""
    import collections
    import shutil
    usage = collections.namedtuple('usage', 'total used free')
    monkeypatch.setattr(shutil, 'disk_usage', lambda folder: usage(1 << 40, 1 << 40, free))
    target = str(tmp_path / 'x_sid.tif')
    with pytest.raises(cli.SidError) as e:
        with safe_files.atomic_path(target):
            raise OSError('73728 requested and 10104 written')
    assert str(e.value) == '%s: cannot write (%s)' % (target, reason.format(folder=tmp_path))
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('exchange', [True, False])
def test_replace_folder_swaps_a_unit_and_temporaries_are_cleaned_by_owner(tmp_path, monkeypatch,
                                                                          exchange):
    """One step with renameat2 where Linux has it; two renames elsewhere (or when it is refused)."""
    if not exchange:
        monkeypatch.setattr(safe_files, '_exchange', lambda a, b: False)
    target = tmp_path / 'export'
    for version in ('old', 'new'):
        build = safe_files.new_temp_folder(str(tmp_path), 'export')
        assert re.match(r'^\.tmp-[0-9a-f]{8}-export$', os.path.basename(build))
        with open(os.path.join(build, 'a.txt'), 'w') as f:
            f.write(version)
        safe_files.fsync_tree(build)
        old = safe_files.replace_folder(build, str(target))
        assert (target / 'a.txt').read_text() == version
        assert old is None if version == 'old' else open(os.path.join(old, 'a.txt')).read() == 'old'
    (tmp_path / '.tmp-0123abcd-other').write_text('x')
    (tmp_path / '.tmp-elsewhere').write_text('x')
    assert safe_files.remove_temporaries(str(tmp_path), lambda name: name == 'export') == [
        os.path.basename(old)]
    assert sorted(os.listdir(str(tmp_path))) == ['.tmp-0123abcd-other', '.tmp-elsewhere',
                                                 'export']
    assert safe_files.file_digest(str(target / 'a.txt')) == (
        'sha256:11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437')


def test_atomic_write_failing_to_create_or_rename_is_one_line(tmp_path, monkeypatch):
    target = str(tmp_path / 'list.txt')
    real_open = os.open

    def no_permission(path, *args, **kwargs):
        if os.path.dirname(str(path)) == str(tmp_path):
            raise PermissionError(errno.EACCES, 'Permission denied', path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, 'open', no_permission)
    with pytest.raises(cli.SidError, match=r'list\.txt: cannot write \(Permission denied\)$'):
        sid_lists.write_list(['a'], target)
    monkeypatch.setattr(os, 'open', real_open)

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, 'replace', disk_full)
    with pytest.raises(cli.SidError, match=r'list\.txt: cannot write \(no space left on %s\)$'
                       % re.escape(str(tmp_path))):
        sid_lists.write_list(['a'], target)
    assert os.listdir(str(tmp_path)) == []


def test_require_writable_dir_creates_and_proves_or_fails_in_one_line(tmp_path, monkeypatch):
    folder = tmp_path / 'a' / 'b'
    safe_files.require_writable_dir(str(folder), 'checkpoints')
    assert folder.is_dir() and os.listdir(str(folder)) == []
    (tmp_path / 'file').write_text('x')
    with pytest.raises(cli.SidError) as e:
        safe_files.require_writable_dir(str(tmp_path / 'file' / 'ckpt'), 'checkpoints')
    assert str(e.value) == '%s: cannot write checkpoints (Not a directory)' % (
        tmp_path / 'file' / 'ckpt')
    with pytest.raises(cli.SidError, match=r'file: cannot write results \(.*file is a file, '
                       r'not a folder\)$'):
        safe_files.require_writable_dir(str(tmp_path / 'file'), 'results')
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # root ignores chmod: simulate EACCES
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, 'Permission denied', path)
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, 'open', read_only)
    with pytest.raises(cli.SidError) as e:
        safe_files.require_writable_dir(str(folder), 'the decoded-raw cache')
    assert str(e.value) == '%s: cannot write the decoded-raw cache (Permission denied)' % folder


# ---------------------------------------------------------------- one run per output folder

HOLDER = '''
import sys, time
sys.path.insert(0, sys.argv[1])
import cli
import raw_io
import safe_files
import sid_lists
safe_files.lock_folder(sys.argv[2], '--checkpoint_dir')
print('locked', flush=True)
if sys.argv[3] == 'wait':
    time.sleep(600)
'''


def hold(folder, wait=True):
    """A process holding `folder` (once it printed 'locked'), or its result when not waiting."""
    import subprocess
    import sys
    from conftest import ROOT
    args = [sys.executable, '-c', HOLDER, ROOT, str(folder), 'wait' if wait else 'exit']
    if not wait:
        return subprocess.run(args, stdout=subprocess.PIPE, universal_newlines=True)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, universal_newlines=True)
    assert proc.stdout.readline() == 'locked\n'
    return proc


def test_a_folder_held_by_a_live_run_is_refused_in_one_line_naming_it(tmp_path):
    proc = hold(tmp_path)
    try:
        with pytest.raises(cli.SidError) as error:
            safe_files.lock_folder(str(tmp_path), '--checkpoint_dir')
        assert str(error.value) == (
            '%s: in use by -c (pid %d on %s); wait for it to end or give --checkpoint_dir '
            'another folder' % (tmp_path, proc.pid, __import__('socket').gethostname()))
    finally:
        proc.kill()
        proc.wait()
    # kill -9 leaves the file but not the lock: the next run takes it.
    assert os.path.exists(str(tmp_path / safe_files.LOCK_NAME))
    assert hold(tmp_path, wait=False).stdout == 'locked\n'


def test_a_normal_exit_releases_and_removes_the_lock(tmp_path):
    assert hold(tmp_path, wait=False).returncode == 0
    assert os.listdir(str(tmp_path)) == []
    assert hold(tmp_path, wait=False).returncode == 0
