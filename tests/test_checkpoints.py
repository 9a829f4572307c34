"""checkpoints: finding the checkpoint in a folder wherever its state file points, relative state
files, keep-last-N across restarts, leftovers of dead runs, failed saves, unreadable checkpoints,
and kill -9 at every step of a save. Checkpoints here hold one small variable whose value is the
global step, so what a folder resumes from can be read back."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import ROOT

import bench_inference
import checkpoints
import cli
import network

SIZE = 1 << 21  # float32 values: an 8 MB data file, slow enough to be caught while it is written


class Model(object):
    """A graph with one variable set to the global step before each save."""

    def __init__(self, size=SIZE):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.value = tf.Variable(tf.zeros([size]), name='value')
            self.step = tf.placeholder(tf.float32, [])
            self.set = tf.assign(self.value, tf.fill([size], self.step))
            self.saver = tf.train.Saver()
            self.sess = tf.Session(graph=self.graph)
            self.sess.run(tf.global_variables_initializer())

    def save(self, folder, step, **kwargs):
        with self.graph.as_default():
            self.sess.run(self.set, {self.step: step})
            return checkpoints.save(self.saver, self.sess, str(folder), step, **kwargs)

    def save_plain(self, folder, step, name=checkpoints.NAME):
        """As TensorFlow's Saver saves by default (and train_Sony.py did): absolute paths."""
        with self.graph.as_default():
            self.sess.run(self.set, {self.step: step})
            return self.saver.save(self.sess, os.path.join(str(folder), name),
                                   step if name == checkpoints.NAME else None)


@pytest.fixture(scope='module')
def model():
    m = Model()
    yield m
    m.sess.close()


def stored_step(prefix):
    return int(tf.train.load_variable(prefix, 'value')[0])


def names(folder):
    return sorted(os.listdir(str(folder)))


# ---------------------------------------------------------------- finding

def test_find_uses_the_files_in_the_folder_whatever_the_state_file_says(model, tmp_path):
    """Issue 8: TF 1.15's latest_checkpoint raises on another machine's absolute path; here
    every case resolves inside the folder, on every runtime."""
    folder = tmp_path / 'ckpt'
    for step in (3, 6):
        model.save_plain(folder, step)
    state = (folder / 'checkpoint').read_text()
    assert str(folder) in state  # TensorFlow's default: absolute paths
    # A state file naming another machine's absolute path (the released model's does).
    (folder / 'checkpoint').write_text(
        'model_checkpoint_path: "/home/chen/SID/checkpoint/Sony/model.ckpt-3"\n'
        'all_model_checkpoint_paths: "/home/chen/SID/checkpoint/Sony/model.ckpt-3"\n')
    assert checkpoints.find(str(folder)) == str(folder / 'model.ckpt-3')  # recorded, by basename
    assert checkpoints.prefixes(str(folder)) == [str(folder / 'model.ckpt-3'),
                                                 str(folder / 'model.ckpt-6')]
    # No state file, or one naming a file that is not here: the newest by global step.
    (folder / 'checkpoint').write_text('model_checkpoint_path: "/elsewhere/model.ckpt-99"\n')
    assert checkpoints.find(str(folder)) == str(folder / 'model.ckpt-6')
    (folder / 'checkpoint').write_text('garbage {{{')
    assert checkpoints.find(str(folder)) == str(folder / 'model.ckpt-6')
    os.remove(str(folder / 'checkpoint'))
    assert checkpoints.find(str(folder)) == str(folder / 'model.ckpt-6')
    # A prefix is taken as given; nothing found is None.
    assert checkpoints.find(str(folder / 'model.ckpt-3')) == str(folder / 'model.ckpt-3')
    assert checkpoints.find(str(folder / 'model.ckpt-4')) is None
    assert checkpoints.find(str(tmp_path / 'empty')) is None
    (tmp_path / 'empty').mkdir()
    assert checkpoints.find(str(tmp_path / 'empty')) is None


def test_find_the_released_models_relative_prefix_without_a_step(model, tmp_path):
    """The authors' release: model.ckpt.{index,data,meta} and a state file `model.ckpt`."""
    folder = tmp_path / 'Sony'
    model.save_plain(folder, 0, name='model.ckpt.released')
    for name in os.listdir(str(folder)):  # as released: model.ckpt.{index,data-*,meta}
        if name != 'checkpoint':
            os.rename(str(folder / name), str(folder / name.replace('.released', '')))
    (folder / 'checkpoint').write_text('model_checkpoint_path: "model.ckpt"\n'
                                       'all_model_checkpoint_paths: "model.ckpt"\n')
    assert checkpoints.find(str(folder)) == str(folder / 'model.ckpt')
    os.remove(str(folder / 'checkpoint'))
    assert checkpoints.find(str(folder)) == str(folder / 'model.ckpt')
    assert checkpoints.step_of(str(folder / 'model.ckpt')) == -1


# ---------------------------------------------------------------- checking

def test_check_against_the_u_net_variables(tmp_path):
    released = str(tmp_path / 'released' / 'model.ckpt')
    bench_inference.make_checkpoint(released)

    def save(folder, shapes, extra=()):
        with tf.Graph().as_default():
            saved = [tf.Variable(np.zeros(s, np.float32), name=n) for n, s in shapes.items()]
            saved += [tf.Variable(0.0, name=n) for n in extra]
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return tf.train.Saver(saved).save(sess, str(tmp_path / folder / 'model.ckpt'))

    with tf.Graph().as_default():
        network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
        variables = network.model_variables()
        shapes = dict((v.op.name, v.shape.as_list()) for v in variables)
        checkpoints.check(released, variables)  # the released naming passes
        # Extra variables (a training checkpoint's Adam slots, step counter) are fine.
        checkpoints.check(save('train', shapes, ['beta1_power', 'global_step']), variables)
        partial = dict((n, s) for n, s in shapes.items() if not n.startswith('Variable'))
        with pytest.raises(cli.SidError,
                           match=r'lacks 4 of the 42 U-Net variables \(first: Variable'):
            checkpoints.check(save('partial', partial), variables)
        wrong = dict(shapes, **{'g_conv10/weights': [1, 1, 32, 3]})
        with pytest.raises(cli.SidError, match=r'g_conv10/weights has shape \[1, 1, 32, 3\]'):
            checkpoints.check(save('wrong', wrong), variables)
        (tmp_path / 'junk.index').write_bytes(b'not a checkpoint')
        with pytest.raises(cli.SidError, match='junk: unreadable checkpoint'):
            checkpoints.check(str(tmp_path / 'junk'), variables)
        data = released + '.data-00000-of-00001'
        with open(data, 'r+b') as f:  # the index is whole, a weight is not
            f.truncate(os.path.getsize(data) - 100)
        with pytest.raises(cli.SidError, match='model.ckpt: unreadable checkpoint'):
            checkpoints.check(released, variables)


# ---------------------------------------------------------------- saving

def test_state_file_is_relative_so_copies_and_moves_use_their_own_files(model, tmp_path):
    original = tmp_path / 'original'
    for step in (1, 2):
        model.save(original, step)
    state = (original / 'checkpoint').read_text()
    assert state == ('model_checkpoint_path: "model.ckpt-2"\n'
                     'all_model_checkpoint_paths: "model.ckpt-1"\n'
                     'all_model_checkpoint_paths: "model.ckpt-2"\n')
    copy = tmp_path / 'copy'
    shutil.copytree(str(original), str(copy))
    model.save(original, 3)  # the original moves on; the copy must not follow it
    assert checkpoints.find(str(copy)) == str(copy / 'model.ckpt-2')
    assert tf.train.latest_checkpoint(str(copy)) == str(copy / 'model.ckpt-2')  # TF agrees
    moved = tmp_path / 'moved'
    shutil.move(str(original), str(moved))
    assert checkpoints.find(str(moved)) == str(moved / 'model.ckpt-3')
    assert stored_step(checkpoints.find(str(moved))) == 3


def test_keeps_the_newest_n_across_restarts_and_nothing_else(model, tmp_path):
    """Issue 9.6: Saver(max_to_keep) only deletes what its own process saved, so every restart
    left its checkpoints behind. Earlier runs here saved with a plain Saver (absolute state)."""
    folder = tmp_path / 'ckpt'
    for step in (1, 2, 3, 4):  # four earlier runs
        model.save_plain(folder, step)
    model.save_plain(folder, 0, name='model.ckpt.released')  # a stepless (released) model
    for name in os.listdir(str(folder)):
        if '.released' in name:
            os.rename(str(folder / name), str(folder / name.replace('.released', '')))
    (folder / 'notes.txt').write_text(u'mine')
    model.save(folder, 5)
    assert names(folder) == ['checkpoint', 'model.ckpt-4.data-00000-of-00001',
                             'model.ckpt-4.index', 'model.ckpt-4.meta',
                             'model.ckpt-5.data-00000-of-00001',
                             'model.ckpt-5.index', 'model.ckpt.data-00000-of-00001',
                             'model.ckpt.index', 'model.ckpt.meta', 'notes.txt']
    model.save(folder, 6, keep=3)
    assert [checkpoints.step_of(p) for p in checkpoints.prefixes(str(folder))] == [6, 5, 4, -1]
    model.save(folder, 7, keep=1)
    assert [checkpoints.step_of(p) for p in checkpoints.prefixes(str(folder))] == [7, -1]


def test_leftovers_of_dead_runs_are_removed_and_nothing_else(model, tmp_path):
    folder = tmp_path / 'ckpt'
    model.save(folder, 1)
    leftovers = ['model.ckpt-2.data-00000-of-00001.tempstate8817342059375321', 'checkpoint.tmp'
                 + 'ab' * 16, 'model.ckpt-2.meta.tmp' + 'cd' * 16, '.tmp-x8ul0e-checkpoint',
                 'model.ckpt-2.data-00000-of-00001', 'model.ckpt-0.meta']  # last two: no index
    kept = ['checkpoint.tmp', 'model.ckpt-1.tempstate', 'tmp-notes.txt', 'model.ckpt-x.meta']
    for name in leftovers + kept:
        (folder / name).write_bytes(b'x' * 10)
    assert checkpoints.remove_leftovers(str(folder)) == sorted(leftovers)
    assert names(folder) == sorted(kept + ['checkpoint', 'model.ckpt-1.data-00000-of-00001',
                                           'model.ckpt-1.index'])
    assert checkpoints.remove_leftovers(str(tmp_path / 'absent')) == []


FULL_DISK_CHILD = r'''
import resource, sys
sys.path.insert(0, sys.argv[2])
import test_checkpoints, checkpoints, cli
model = test_checkpoints.Model()
model.save(sys.argv[1], 1)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
try:
    model.save(sys.argv[1], 2)
except cli.SidError as e:
    print(e)
'''


def test_a_write_that_fails_midway_leaves_nothing_and_names_the_last_good_one(tmp_path):
    """A real failure inside TensorFlow's writer: a 1 MB file size limit (EFBIG; root cannot be
    kept from writing by permissions, and no small filesystem can be mounted here)."""
    folder = tmp_path / 'ckpt'
    proc = subprocess.run([sys.executable, '-c', FULL_DISK_CHILD, str(folder),
                           os.path.join(ROOT, 'tests')], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        '%s: cannot save a checkpoint (File too large); the last good checkpoint is %s'
        % (folder, folder / 'model.ckpt-1')]
    assert names(folder) == ['checkpoint', 'model.ckpt-1.data-00000-of-00001',
                             'model.ckpt-1.index']
    assert checkpoints.find(str(folder)) == str(folder / 'model.ckpt-1')


def test_disk_full_is_one_line_and_its_partial_file_is_removed(model, tmp_path, monkeypatch):
    """ENOSPC simulated: TensorFlow's writer leaves its partial .tempstate and raises
    ResourceExhaustedError (its code for ENOSPC); the state file write raises OSError 28."""
    folder = tmp_path / 'ckpt'
    model.save(folder, 1)
    real_save = model.saver.save

    def full_disk_save(sess, prefix, global_step, **kwargs):
        partial = '%s-%d.data-00000-of-00001.tempstate123456789' % (prefix, global_step)
        with open(partial, 'wb') as f:
            f.write(b'\0' * 4096)
        raise tf.errors.ResourceExhaustedError(None, None, partial + '; No space left on device')

    monkeypatch.setattr(model.saver, 'save', full_disk_save)
    with pytest.raises(cli.SidError) as e:
        model.save(folder, 2)
    assert str(e.value) == 'no space left on %s; the last good checkpoint is %s' % (
        folder, folder / 'model.ckpt-1')
    assert names(folder) == ['checkpoint', 'model.ckpt-1.data-00000-of-00001',
                             'model.ckpt-1.index']

    monkeypatch.setattr(model.saver, 'save', real_save)

    def full_disk_state(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(checkpoints, 'write_state', full_disk_state)
    with pytest.raises(cli.SidError, match='^no space left on .*model.ckpt-1$'):
        model.save(folder, 2)
    assert names(folder) == ['checkpoint', 'model.ckpt-1.data-00000-of-00001',
                             'model.ckpt-1.index']  # the unrecorded model.ckpt-2 went too


# ---------------------------------------------------------------- unreadable checkpoints

@pytest.mark.parametrize('damage', ['truncate', 'flip', 'delete data', 'delete index'])
def test_an_unreadable_newest_checkpoint_gives_way_to_the_previous_one(model, tmp_path, damage):
    folder = tmp_path / 'ckpt'
    for step in (1, 2):
        model.save(folder, step)
    data, index = folder / 'model.ckpt-2.data-00000-of-00001', folder / 'model.ckpt-2.index'
    if damage == 'truncate':
        with open(str(data), 'r+b') as f:
            f.truncate(os.path.getsize(str(data)) // 2)
    elif damage == 'flip':
        with open(str(data), 'r+b') as f:
            f.seek(1000)
            f.write(b'\x01\x02\x03\x04')
    else:
        os.remove(str(data if damage == 'delete data' else index))
    prefix, skipped = checkpoints.newest_intact(str(folder))
    assert prefix == str(folder / 'model.ckpt-1') and stored_step(prefix) == 1
    if damage == 'delete index':  # no index: not a checkpoint at all
        assert skipped == []
    else:
        assert [str(e).split(': unreadable checkpoint (')[0] for e in skipped] == [
            str(folder / 'model.ckpt-2')]
        assert '\n' not in str(skipped[0])
    with pytest.raises(cli.SidError, match='model.ckpt-1: unreadable checkpoint'):
        os.remove(str(folder / 'model.ckpt-1.data-00000-of-00001'))
        checkpoints.verify(str(folder / 'model.ckpt-1'))


# ---------------------------------------------------------------- kill -9 during a save

CRASH_CHILD = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[3])
import cli
import safe_files
import test_checkpoints
folder, kill_at = sys.argv[1], int(sys.argv[2])
model = test_checkpoints.Model()
model.save(folder, 1)
model.save(folder, 2)
count = [0]


def step():
    count[0] += 1
    if count[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


def killing(function, before=False):
    # Kill this process after (and, for renames, also before) the kill_at-th call on the folder.
    def wrapper(*args, **kwargs):
        here = any(str(a).startswith(folder) for a in args + tuple(kwargs.values()))
        if here and before:
            step()
        result = function(*args, **kwargs)
        if here:
            step()
        return result
    return wrapper


model.saver.save = killing(model.saver.save)  # TensorFlow wrote data and index
safe_files._new_temp = killing(safe_files._new_temp)  # an empty temporary state file
os.replace = killing(os.replace, before=True)  # before: the temporary is written
os.rename = killing(os.rename, before=True)
os.remove = killing(os.remove)  # the older checkpoints' files, one by one
os.unlink = killing(os.unlink)
model.save(folder, 3)
print('completed after %d steps' % count[0])
"""


def check_resumable(model, folder, recorded):
    """What a restart does after a kill: clear leftovers, take the newest intact checkpoint,
    save the next step. Returns the step resumed from."""
    checkpoints.remove_leftovers(str(folder))
    complete = checkpoints.prefixes(str(folder))
    for path in complete:  # nothing half-written or half-deleted stays
        checkpoints.verify(path)
    assert names(folder) == sorted(['checkpoint'] + [
        os.path.basename(p) + ext for p in complete for ext in ('.data-00000-of-00001', '.index')])
    prefix, skipped = checkpoints.newest_intact(str(folder))
    assert skipped == [] and os.path.basename(prefix) == recorded
    resumed = checkpoints.step_of(prefix)
    assert stored_step(prefix) == resumed
    model.save(folder, resumed + 1)  # as training goes on from there
    assert [checkpoints.step_of(p) for p in checkpoints.prefixes(str(folder))] == [
        resumed + 1, resumed]
    return resumed


def test_kill_9_at_every_step_of_a_save_resumes_from_the_last_recorded_checkpoint(model, tmp_path):
    """A child saves steps 1 and 2, then is killed (SIGKILL) at the 1st, 2nd, ... file operation
    of the save of step 3 that Python sees: after TensorFlow wrote data and index, after the
    temporary state file appears, before and after it replaces the state file, after each
    deletion of step 1's files - until a save completes. Every time the restart is clean."""
    resumed, total = [], None
    for kill_at in range(1, 30):
        folder = tmp_path / ('kill%02d' % kill_at)
        proc = subprocess.run([sys.executable, '-c', CRASH_CHILD, str(folder), str(kill_at),
                               os.path.join(ROOT, 'tests')], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
                              env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2'))
        if proc.returncode == 0:
            total = int(proc.stdout.split('completed after ')[1].split()[0])
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        resumed.append(check_resumable(model, folder, checkpoints.recorded(str(folder))))
    assert total == len(resumed) >= 6
    # Until the state file names step 3 a restart resumes from step 2, afterwards from step 3.
    assert resumed == sorted(resumed) and resumed[0] == 2 and resumed[-1] == 3


@pytest.mark.parametrize('stage', ['data being written', 'index being written',
                                   'both written, state file not yet'])
def test_kill_inside_tensorflows_save_resumes_from_the_previous_checkpoint(model, tmp_path,
                                                                           stage):
    """Kills between TensorFlow's own operations, which Python cannot interrupt: it writes
    <data>.tempstate<n>, renames it, writes <index>.tempstate<n>, renames it (strace shows this
    order on TF 1.15 and 2.x). A kill leaves the files of one of these stages."""
    folder, later = tmp_path / 'ckpt', tmp_path / 'later'
    for step in (1, 2):
        model.save(folder, step)
    model.save(later, 3)
    data, index = 'model.ckpt-3.data-00000-of-00001', 'model.ckpt-3.index'
    half = (later / data).read_bytes()[:SIZE]
    if stage == 'data being written':
        (folder / (data + '.tempstate5791')).write_bytes(half)
    else:
        shutil.copy(str(later / data), str(folder / data))
        if stage == 'index being written':
            (folder / (index + '.tempstate8264')).write_bytes((later / index).read_bytes()[:40])
        else:
            shutil.copy(str(later / index), str(folder / index))
    assert check_resumable(model, folder, 'model.ckpt-2') == 2
