"""train_Sony.py: the paper's sampling, the tf.data pipeline against the official in-RAM path,
logs, a two-epoch run, resume (after a normal end, SIGTERM, kill -9, from a copied folder, past an
unreadable checkpoint), the learning-rate schedule, fine-tuning, and every fault of issues 4 and 9.
Runs use tiny generated raws and 32 x 32 patches."""
import glob
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import ROOT, ctrl_c_enabled, make_tiny_dataset, run_script
from test_validation import best_files, consistent_best

import checkpoints
import cli
import network
import pipeline
import raw_cache
import safe_files
import sid_lists
import train_Sony
import validation

PS = 32
STEPS = 3  # the tiny dataset has 3 training scenes


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """This module's own tiny dataset (training writes its cache under <data_dir>/cache)."""
    root = tmp_path_factory.mktemp('train_data')
    make_tiny_dataset(root)
    return root


def train(data, work, *args, **kwargs):
    """Run train_Sony.py on the tiny dataset with outputs under `work`."""
    base = ['--data_dir=%s' % data,
            '--train_list=%s' % os.path.join(str(data), 'Sony_train_list.txt'),
            '--checkpoint_dir=%s' % os.path.join(str(work), 'ckpt'),
            '--result_dir=%s' % os.path.join(str(work), 'result'), '--ps=%d' % PS, '--device=cpu']
    return run_script('train_Sony.py', *(base + list(args)), **kwargs)


def parsed(stdout, regex):
    return [m.groups() for m in (regex.match(line) for line in stdout.splitlines()) if m]


def latest_state(work):
    path = tf.train.latest_checkpoint(os.path.join(str(work), 'ckpt'))
    return path, int(tf.train.load_variable(path, 'epoch')), int(
        tf.train.load_variable(path, 'global_step'))


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    """One two-epoch run (lr drop after epoch 1, samples at epoch 2), shared read-only."""
    work = tmp_path_factory.mktemp('trained')
    proc = train(data, work, '--epochs=2', '--save_freq=2', '--lr_drop_epoch=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc


# ---------------------------------------------------------------- units

def test_log_lines_parse_back_with_their_regexes():
    step = train_Sony.STEP_LOG % (12, 7, 0.0412345678, 0.05123)
    assert train_Sony.STEP_LOG_RE.match(step).groups() == ('12', '7', '0.041235', '0.0512')
    epoch = train_Sony.EPOCH_LOG % (12, 161, 0.04, 9.5, 0.012, 1e-05, 'ck/model.ckpt-1932')
    g = train_Sony.EPOCH_LOG_RE.match(epoch).groups()
    assert (int(g[0]), int(g[1]), float(g[4]), float(g[5]), g[6]) == (
        12, 161, 0.012, 1e-05, 'ck/model.ckpt-1932')
    assert not train_Sony.STEP_LOG_RE.match(epoch) and not train_Sony.EPOCH_LOG_RE.match(step)
    assert 'Loss=' not in epoch and 'Time=' not in epoch  # ModelZoo greps see step lines only
    first = train_Sony.FIRST_STEP_LOG % (1795670323.83, 2.35)
    assert float(train_Sony.FIRST_STEP_LOG_RE.match(first).group(2)) == 2.35


def test_learning_rate_schedule():
    lr = train_Sony.learning_rate
    assert lr(1) == lr(2000) == 1e-4 and lr(2001) == lr(4000) == pytest.approx(1e-5)
    assert lr(4, 2e-4, 4) == 2e-4 and lr(5, 2e-4, 4) == pytest.approx(2e-5)


def test_patch_larger_than_a_raw_is_an_error_naming_the_file(data, tmp_path):
    pairs = sid_lists.read_list(os.path.join(str(data), 'Sony_train_list.txt'), str(data))[:1]
    entries = raw_cache.build_cache([(pairs[0].short, 'input'), (pairs[0][1], 'gt')],
                                    str(tmp_path), str(data), workers=1, progress=False)
    with pytest.raises(cli.SidError) as e:
        pipeline.CachedPairs(pairs, entries).check_shapes([0], 512)
    assert pairs[0].short in str(e.value) and '--ps=512' in str(e.value)


# ---------------------------------------------------------------- runs

def test_two_epochs_log_checkpoint_samples_and_summaries(trained):
    work, proc = trained
    steps = parsed(proc.stdout, train_Sony.STEP_LOG_RE)
    assert [(int(e), int(s)) for e, s, _, _ in steps] == [(e, s) for e in (1, 2)
                                                          for s in range(1, STEPS + 1)]
    assert all(np.isfinite(float(l)) and float(t) > 0 for _, _, l, t in steps)
    epochs = parsed(proc.stdout, train_Sony.EPOCH_LOG_RE)
    assert [(int(g[0]), int(g[1])) for g in epochs] == [(1, STEPS), (2, STEPS)]
    assert [float(g[5]) for g in epochs] == [pytest.approx(1e-4), pytest.approx(1e-5)]
    assert len(parsed(proc.stdout, train_Sony.FIRST_STEP_LOG_RE)) == 1
    assert proc.stdout.splitlines()[0].startswith('device=cpu precision=fp32')
    path, epoch, step = latest_state(work)
    assert (os.path.basename(path), epoch, step) == ('model.ckpt-%d' % (2 * STEPS), 2, 2 * STEPS)
    assert epochs[-1][6] == path
    state = open(os.path.join(str(work), 'ckpt', 'checkpoint')).read()
    assert state == ('model_checkpoint_path: "model.ckpt-6"\n'  # relative: copies use their own
                     'all_model_checkpoint_paths: "model.ckpt-3"\n'
                     'all_model_checkpoint_paths: "model.ckpt-6"\n')
    names = set(name for name, _ in tf.train.list_variables(path))
    assert {'g_conv1_1/weights', 'g_conv10/biases', 'Variable', 'Variable_3'} <= names
    assert not glob.glob(os.path.join(str(work), 'ckpt', '.tmp-*'))
    jpgs = sorted(glob.glob(os.path.join(str(work), 'result', '*', '*.jpg')))
    assert [os.path.basename(os.path.dirname(j)) for j in jpgs] == ['0002'] * STEPS
    from PIL import Image
    w, h = Image.open(jpgs[0]).size
    assert (w, h) == (4 * PS, 2 * PS)  # ground truth | output
    assert glob.glob(os.path.join(str(work), 'result', 'events.out.tfevents.*'))


def test_sigterm_saves_then_a_restart_redoes_the_interrupted_epoch(data, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT, PYTHONUNBUFFERED='1')
    cmd = [sys.executable, os.path.join(ROOT, 'train_Sony.py'), '--data_dir=%s' % data,
           '--train_list=%s' % os.path.join(str(data), 'Sony_train_list.txt'),
           '--checkpoint_dir=%s' % (tmp_path / 'ckpt'), '--result_dir=%s' % (tmp_path / 'result'),
           '--ps=%d' % PS, '--epochs=1000', '--lr_drop_epoch=1', '--device=cpu']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            universal_newlines=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        m = train_Sony.STEP_LOG_RE.match(line.strip())
        if m and m.group(1) == '2':  # epoch 1 saved, epoch 2 under way
            proc.send_signal(signal.SIGTERM)
            break
    lines += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert any(line.startswith('stopped by signal %d' % signal.SIGTERM) for line in lines)
    path, epoch, step = latest_state(tmp_path)
    assert epoch == 1 and step > STEPS  # the partial epoch's updates are kept, not counted
    proc = train(data, tmp_path, '--epochs=2', '--lr_drop_epoch=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed from %s: epoch 1 done, starting epoch 2' % path in proc.stdout
    assert {int(g[0]) for g in parsed(proc.stdout, train_Sony.STEP_LOG_RE)} == {2}
    assert float(parsed(proc.stdout, train_Sony.EPOCH_LOG_RE)[0][5]) == pytest.approx(1e-5)
    assert latest_state(tmp_path)[1:] == (2, step + STEPS)


def test_finetune_loads_weights_only_from_a_checkpoint_without_adam_slots(data, tmp_path):
    with tf.Graph().as_default():
        network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
        source = str(tmp_path / 'released' / 'model.ckpt')
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver(network.model_variables()).save(sess, source)
    proc = train(data, tmp_path, '--epochs=1', '--finetune_from=%s' % os.path.dirname(source))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'fine-tuning from' in proc.stdout
    path = latest_state(tmp_path)[0]
    for name in ('g_conv1_1/weights', 'Variable_2'):
        moved = tf.train.load_variable(path, name) - tf.train.load_variable(source, name)
        assert 0 < np.abs(moved).max() <= 2 * STEPS * 1e-4  # Adam steps of at most ~lr each
    # Weights-only checkpoints cannot be resumed from: a clear error, not a silent fresh start.
    proc = train(data, tmp_path / 'other', '--epochs=1',
                 '--checkpoint_dir=%s' % os.path.dirname(source))
    assert_one_line_error(proc, source, '--finetune_from')


def test_help_lists_the_flags_with_their_defaults():
    proc = run_script('train_Sony.py', '--help')  # absl exits 1 after printing help
    for flag, default in (('epochs', '4000'), ('ps', '512'), ('save_freq', '500'),
                          ('learning_rate', '0.0001'), ('lr_drop_epoch', '2000'),
                          ('data_dir', './dataset'), ('train_list', './Sony_train_list.txt'),
                          ('checkpoint_dir', './checkpoint/Sony/'),
                          ('result_dir', './result_Sony/'),
                          ('device', 'auto'), ('precision', 'auto'), ('distributed', 'none')):
        section = proc.stdout.split('--%s:' % flag)[1]
        assert "(default: '%s')" % default in section.split('\n  --')[0], flag


# ---------------------------------------------------------------- faults

def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0]
    assert not parsed(proc.stdout, train_Sony.STEP_LOG_RE)


def test_missing_training_file_fails_before_training_naming_list_line(data, tmp_path):
    lines = open(os.path.join(str(data), 'Sony_train_list.txt')).read().splitlines()
    lines[1] = lines[1].replace('_00_', '_07_')
    bad = str(tmp_path / 'list.txt')
    sid_lists.write_list(lines, bad)
    proc = train(data, tmp_path, '--epochs=1', '--train_list=%s' % bad)
    assert_one_line_error(proc, bad + ':2', 'file not found', '_07_')
    assert not os.path.exists(str(tmp_path / 'ckpt'))


def test_unreadable_raw_fails_before_training_naming_the_file(data, tmp_path):
    copy = tmp_path / 'copy'
    shutil.copytree(os.path.join(str(data), 'Sony'), str(copy / 'Sony'))
    listed = sid_lists.read_list(os.path.join(str(data), 'Sony_train_list.txt'), str(copy))
    victim = listed[-1][1]  # a training long exposure
    with open(victim, 'wb') as f:
        f.write(b'not a raw file' * 100)
    proc = train(copy, tmp_path, '--epochs=1',
                 '--train_list=%s' % os.path.join(str(data), 'Sony_train_list.txt'))
    assert_one_line_error(proc, victim)
    assert not os.path.exists(str(tmp_path / 'ckpt'))


def test_empty_training_list_is_an_error(data, tmp_path):
    empty = tmp_path / 'empty.txt'
    empty.write_text(u'\n')
    proc = train(data, tmp_path, '--epochs=1', '--train_list=%s' % empty)
    assert_one_line_error(proc, str(empty), 'no pairs')


@pytest.mark.parametrize('seed', ['-1', '99999999999'])
def test_seed_outside_numpy_range_is_refused_at_flag_parsing(data, tmp_path, seed):
    proc = train(data, tmp_path, '--epochs=1', '--seed=%s' % seed,
                 '--cache_dir=%s' % (tmp_path / 'cache'))
    assert proc.returncode == 1 and 'flag --seed=%s' % seed in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'cache').exists()


def test_unwritable_output_folders_fail_in_one_line_before_step_1(data, tmp_path):
    """Root ignores chmod, so the folders sit under a regular file (NotADirectoryError)."""
    (tmp_path / 'file').write_text('x')
    blocked = tmp_path / 'file' / 'sub'
    for flag, what in (('checkpoint_dir', 'checkpoints'),
                       ('result_dir', 'samples and TensorBoard logs'),
                       ('cache_dir', 'the decoded-raw cache')):
        proc = train(data, tmp_path, '--epochs=1', '--%s=%s' % (flag, blocked))
        assert_one_line_error(proc, '%s: cannot write %s (Not a directory)' % (blocked, what))
    # The default cache inside a dataset it cannot write to (here: "cache" is a file).
    copy = tmp_path / 'copy'
    make_tiny_dataset(copy, n_train=1, n_test=0, n_val=0, bursts=1)
    (copy / 'cache').write_text('x')
    proc = train(copy, tmp_path / 'work', '--epochs=1')
    assert_one_line_error(proc, '%s: cannot write the decoded-raw cache (%s is a file, not a '
                          'folder)' % (copy / 'cache', copy / 'cache'))
    assert not (tmp_path / 'work').exists()


def test_damaged_cache_entry_is_rebuilt_before_training_never_used(data, tmp_path):
    pairs = sid_lists.read_list(os.path.join(str(data), 'Sony_train_list.txt'), str(data))
    cache = str(tmp_path / 'cache')
    entries = raw_cache.build_cache([(pairs[0][1], 'gt')], cache, str(data), workers=1,
                                    progress=False)
    victim = entries[(pairs[0][1], 'gt')]
    with open(victim, 'rb') as f:
        good = f.read()
    middle = len(good) // 2  # 64 bytes overwritten inside the pixels: the header stays valid
    with open(victim, 'wb') as f:
        f.write(good[:middle] + bytes(64) + good[middle + 64:])
    proc = train(data, tmp_path, '--epochs=1', '--cache_dir=%s' % cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rebuilt = [line for line in proc.stderr.splitlines() if 'rebuilt it' in line]
    assert len(rebuilt) == 1 and rebuilt[0].startswith('cache entry %s: checksum mismatch'
                                                       % victim)
    with open(victim, 'rb') as f:
        assert f.read() == good


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(data, trained,
                                                                             tmp_path):
    shutil.copytree(os.path.join(str(trained[0]), 'ckpt'), str(tmp_path / 'ckpt'))
    before = latest_state(tmp_path)
    proc = train(data, tmp_path, '--epochs=4', '--learning_rate=1e30')
    assert proc.returncode == 1
    error = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert len(error) == 1 and 'loss is nan at epoch 3 step' in error[0], proc.stderr[-3000:]
    assert before[0] in error[0]
    assert latest_state(tmp_path) == before


# ---------------------------------------------------------------- checkpoints (issue 9)

def popen_train(data, work, *args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT, PYTHONUNBUFFERED='1')
    cmd = [sys.executable, os.path.join(ROOT, 'train_Sony.py'), '--data_dir=%s' % data,
           '--train_list=%s' % os.path.join(str(data), 'Sony_train_list.txt'),
           '--checkpoint_dir=%s' % (work / 'ckpt'), '--result_dir=%s' % (work / 'result'),
           '--ps=%d' % PS, '--device=cpu'] + list(args)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            universal_newlines=True, **kwargs)


def step_files(folder):
    return sorted(n for n in os.listdir(str(folder)) if n != 'checkpoint')


def test_a_copied_folder_resumes_from_its_own_files_and_keeps_two_checkpoints(data, trained,
                                                                              tmp_path):
    """Issue 9.2/9.6/9.8: a folder copied from one whose state file recorded absolute paths (as
    TensorFlow writes them by default), holding the checkpoints of earlier runs and the
    temporaries of a killed save."""
    original, ckpt = os.path.join(str(trained[0]), 'ckpt'), tmp_path / 'ckpt'
    shutil.copytree(original, str(ckpt))
    with open(str(ckpt / 'checkpoint'), 'w') as f:
        f.write('model_checkpoint_path: "%s/model.ckpt-6"\n' % original)
    for step in (1, 2):  # older runs' checkpoints (the content does not matter)
        for ext in ('.index', '.data-00000-of-00001'):
            shutil.copy(str(ckpt / ('model.ckpt-3' + ext)), str(ckpt / ('model.ckpt-%d%s'
                                                                        % (step, ext))))
    leftovers = ['model.ckpt-9.data-00000-of-00001.tempstate4401', 'checkpoint.tmp' + 'e' * 32]
    for name in leftovers:
        (ckpt / name).write_bytes(b'\0' * 1000)
    proc = train(data, tmp_path, '--epochs=3', '--lr_drop_epoch=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'removed 2 leftovers of an interrupted save from %s (%s)' % (
        ckpt, ', '.join(sorted(leftovers))) in proc.stdout
    assert ('resumed from %s: epoch 2 done, starting epoch 3' % (ckpt / 'model.ckpt-6')
            in proc.stdout)
    assert step_files(ckpt) == ['model.ckpt-6.data-00000-of-00001', 'model.ckpt-6.index',
                                'model.ckpt-9.data-00000-of-00001', 'model.ckpt-9.index']
    assert step_files(original) == ['model.ckpt-3.data-00000-of-00001', 'model.ckpt-3.index',
                                    'model.ckpt-6.data-00000-of-00001', 'model.ckpt-6.index']


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(data, trained, tmp_path):
    """Issue 9.9: the previous checkpoint is kept for this. The resumed run redoes epoch 2 exactly
    (same loss as the uninterrupted run) and its save replaces the broken file."""
    shutil.copytree(os.path.join(str(trained[0]), 'ckpt'), str(tmp_path / 'ckpt'))
    broken = tmp_path / 'ckpt' / 'model.ckpt-6.data-00000-of-00001'
    with open(str(broken), 'r+b') as f:
        f.truncate(os.path.getsize(str(broken)) // 2)
    proc = train(data, tmp_path, '--epochs=2', '--save_freq=2', '--lr_drop_epoch=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    previous = tmp_path / 'ckpt' / 'model.ckpt-3'
    warnings = [line for line in proc.stdout.splitlines() if line.startswith('warning: ')]
    assert warnings == ['warning: %s: unreadable checkpoint (Read less bytes than requested); '
                        'resuming from the previous checkpoint %s'
                        % (tmp_path / 'ckpt' / 'model.ckpt-6', previous)]
    assert 'resumed from %s: epoch 1 done, starting epoch 2' % previous in proc.stdout
    before = parsed(trained[1].stdout, train_Sony.EPOCH_LOG_RE)[1]
    after = parsed(proc.stdout, train_Sony.EPOCH_LOG_RE)
    assert len(after) == 1 and after[0][:3] == before[:3]  # epoch, steps, mean loss
    checkpoints.verify(str(tmp_path / 'ckpt' / 'model.ckpt-6'))
    assert latest_state(tmp_path)[1:] == (2, 2 * STEPS)


def test_a_failed_save_stops_in_one_line_naming_the_last_good_checkpoint(data, trained, tmp_path):
    """Issue 9.8: a write that fails half-way (here a 16 MB file size limit: the data file is
    93 MB) leaves no partial file, and the message names the checkpoint to restart from."""
    shutil.copytree(os.path.join(str(trained[0]), 'ckpt'), str(tmp_path / 'ckpt'))
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))  # noqa: E731
    proc = popen_train(data, tmp_path, '--epochs=3', preexec_fn=limit)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert errors == ['error: %s: cannot save a checkpoint (File too large); the last good '
                      'checkpoint is %s' % (tmp_path / 'ckpt', tmp_path / 'ckpt' / 'model.ckpt-6')]
    assert 'Traceback' not in stderr
    assert step_files(tmp_path / 'ckpt') == step_files(os.path.join(str(trained[0]), 'ckpt'))


def test_sigint_during_start_up_is_one_line_and_exit_130(data, tmp_path):
    """Issue 9.14: before the training loop installs its own handler (which saves first)."""
    proc = popen_train(data, tmp_path, '--epochs=1', preexec_fn=ctrl_c_enabled)
    first = proc.stdout.readline()
    assert first.startswith('device=cpu')  # main() is running: flags parsed, nothing trained
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.startswith('error: ')] == [
        'error: interrupted (SIGINT)']
    assert 'Traceback' not in stderr and not parsed(stdout, train_Sony.STEP_LOG_RE)


def test_kill_9_during_a_save_and_at_random_resumes_at_the_last_saved_epoch(data, tmp_path):
    """SIGKILL right after the last step of epoch 1 (the save is then under way), then at a
    random moment of a later epoch; each restart resumes at the epoch its newest checkpoint
    holds, and the last run ends with two checkpoints and no leftovers. (Every single step of a
    save: tests/test_checkpoints.py.)"""
    rng = random.Random(9)
    ckpt = tmp_path / 'ckpt'
    done = 0  # epochs saved so far, as the folder says
    for kill_after in ('1 %d ' % STEPS, None):
        proc = popen_train(data, tmp_path, '--epochs=1000')
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if kill_after and line.startswith(kill_after):
                break
            if kill_after is None and train_Sony.STEP_LOG_RE.match(line.strip()):
                time.sleep(rng.uniform(0.0, 2.0))  # somewhere in a step, an epoch or a save
                break
        proc.kill()
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        if done:
            assert 'resumed from %s: epoch %d done' % (ckpt / ('model.ckpt-%d' % (done * STEPS)),
                                                       done) in ''.join(lines)
        prefix, skipped = checkpoints.newest_intact(str(ckpt))
        assert skipped == []
        done = int(tf.train.load_variable(prefix, 'epoch')) if prefix else 0
    proc = train(data, tmp_path, '--epochs=%d' % (done + 1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    if done:
        assert 'resumed from %s: epoch %d done' % (ckpt / ('model.ckpt-%d' % (done * STEPS)),
                                                   done) in proc.stdout
    assert [int(g[0]) for g in parsed(proc.stdout, train_Sony.EPOCH_LOG_RE)] == [done + 1]
    assert len(checkpoints.prefixes(str(ckpt))) == min(2, done + 1)
    assert all(n.endswith(('.index', '.data-00000-of-00001')) for n in step_files(ckpt))


# ---------------------------------------------------------------- validation (issue 11)

def val_list(data):
    return os.path.join(str(data), 'Sony_val_list.txt')


def test_validation_log_line_parses_back_with_its_regex():
    line = train_Sony.VAL_LOG % (100, 36, 28.123456, 0.7712345, 28.5, 80, 612.34)
    assert train_Sony.VAL_LOG_RE.match(line).groups() == (
        '100', '36', '28.1235', '0.7712', '28.5000', '80', '612.3')
    assert train_Sony.VAL_LOG_RE.match(train_Sony.VAL_LOG % (1, 1, float('inf'), 1.0,
                                                             float('inf'), 1, 0.1))
    for regex in (train_Sony.STEP_LOG_RE, train_Sony.EPOCH_LOG_RE, train_Sony.FIRST_STEP_LOG_RE):
        assert not regex.match(line)
    assert 'Loss=' not in line and 'Time=' not in line  # ModelZoo greps see step lines only


@pytest.fixture(scope='module')
def validated(data, tmp_path_factory):
    """Three epochs validated after each, shared read-only."""
    work = tmp_path_factory.mktemp('validated')
    proc = train(data, work, '--epochs=3', '--val_list=%s' % val_list(data), '--val_every=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc


def summaries(folder):
    found = {}
    for path in glob.glob(os.path.join(str(folder), 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(value.simple_value)
    return found


def test_validation_logs_scores_and_keeps_the_best_checkpoint(data, validated):
    work, proc = validated
    lines = parsed(proc.stdout, train_Sony.VAL_LOG_RE)
    assert [(g[0], g[1]) for g in lines] == [('1', '1'), ('2', '1'), ('3', '1')]
    psnrs = [float(g[2]) for g in lines]
    assert [float(g[4]) for g in lines] == [max(psnrs[:i + 1]) for i in range(3)]
    best = 1 + psnrs.index(max(psnrs))
    assert int(lines[-1][5]) == best
    record = json.load(open(str(work / 'ckpt' / 'best' / 'best.json')))
    assert record['epoch'] == best and '%.4f' % record['psnr'] == lines[-1][4]
    assert best_files(work / 'ckpt' / 'best') == [
        'best.json', 'checkpoint', 'model.ckpt-%d.data-00000-of-00001' % (STEPS * best),
        'model.ckpt-%d.index' % (STEPS * best)]
    # keep-2 and leftover removal of the main folder leave best/ alone.
    assert best_files(work / 'ckpt') == ['best', 'checkpoint', 'model.ckpt-6.data-00000-of-00001',
                                         'model.ckpt-6.index', 'model.ckpt-9.data-00000-of-00001',
                                         'model.ckpt-9.index']
    assert checkpoints.remove_leftovers(str(work / 'ckpt')) == []
    tags = summaries(work / 'result')
    assert [round(v, 4) for v in tags['val_psnr']] == psnrs
    assert len(tags['val_ssim']) == 3
    assert ('validation every 1 epochs on 1 burst _00 pairs of %s, best checkpoint in %s'
            % (val_list(data), work / 'ckpt' / 'best')) in proc.stdout


def test_test_Sony_runs_the_best_checkpoint_and_eval_gives_the_validation_scores(
        data, validated, tmp_path):
    """Validation is test_Sony.py + eval.py on the validation pairs: the same numbers."""
    work, _ = validated
    best = str(work / 'ckpt' / 'best')
    proc = run_script('test_Sony.py', '--data_dir=%s' % data, '--test_list=%s' % val_list(data),
                      '--checkpoint_dir=%s/' % best, '--result_dir=%s' % tmp_path,
                      '--device=cpu')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'checkpoint %s' % checkpoints.find(best) in proc.stdout
    proc = run_script('eval.py', '--result_dir=%s' % tmp_path, '--jobs=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.load(open(os.path.join(best, 'best.json')))
    assert 'average psnr: %.4f' % record['psnr'] in proc.stdout.splitlines()
    assert 'average ssim: %.4f' % record['ssim'] in proc.stdout.splitlines()


def test_a_resumed_run_keeps_the_best_score(data, validated, tmp_path):
    shutil.copytree(os.path.join(str(validated[0]), 'ckpt'), str(tmp_path / 'ckpt'))
    before = json.load(open(str(tmp_path / 'ckpt' / 'best' / 'best.json')))
    proc = train(data, tmp_path, '--epochs=4', '--val_list=%s' % val_list(data), '--val_every=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    (g,) = parsed(proc.stdout, train_Sony.VAL_LOG_RE)
    after = json.load(open(str(tmp_path / 'ckpt' / 'best' / 'best.json')))
    if float(g[2]) > before['psnr']:
        assert (after['epoch'], g[5]) == (4, '4')
    else:
        assert after == before and (g[4], g[5]) == ('%.4f' % before['psnr'], str(before['epoch']))
    assert 'warning' not in proc.stdout


@pytest.mark.parametrize('psnr', ['1e6', 'NaN', '-3'])
def test_an_implausible_best_record_is_one_line_naming_it_even_with_nothing_to_do(
        data, validated, tmp_path, psnr):
    """Issue 16, case 8: psnr 1e6 or NaN was accepted; best/ then never updated, silently."""
    shutil.copytree(os.path.join(str(validated[0]), 'ckpt'), str(tmp_path / 'ckpt'))
    path = tmp_path / 'ckpt' / 'best' / 'best.json'
    record = json.load(open(str(path)))
    path.write_text(json.dumps(record).replace('"psnr": %s' % json.dumps(record['psnr']),
                                               '"psnr": %s' % psnr))
    proc = train(data, tmp_path, '--epochs=3', '--val_list=%s' % val_list(data), '--val_every=1')
    assert_one_line_error(proc, '%s: implausible best PSNR %r dB (a validation gives 0-100); '
                          'move %s away to start a new best' % (path, float(psnr),
                                                                path.parent))
    assert 'nothing to do' not in proc.stdout


def test_a_best_dir_its_record_does_not_describe_is_validated_again_before_nothing_to_do(
        data, validated, tmp_path):
    """Issue 16, case 6: a kill between best/'s checkpoint and best.json (before best/ became one
    unit) left model.ckpt-9 under a record of another checkpoint, and the rerun said "nothing to
    do". Now the last epoch - the weights best/ was being given - is validated first."""
    shutil.copytree(os.path.join(str(validated[0]), 'ckpt'), str(tmp_path / 'ckpt'))
    best = tmp_path / 'ckpt' / 'best'
    record = consistent_best(best)
    checkpoints.remove_checkpoint(checkpoints.find(str(best)))
    for ext in ('.index', '.data-00000-of-00001'):
        shutil.copy(str(tmp_path / 'ckpt' / ('model.ckpt-9' + ext)), str(best))
    checkpoints.write_state(str(best), str(best / 'model.ckpt-9'), [])
    if record['checkpoint'] == 'model.ckpt-9':  # the record must name another one
        json.dump(dict(record, checkpoint='model.ckpt-3'), open(str(best / 'best.json'), 'w'))
    proc = train(data, tmp_path, '--epochs=3', '--val_list=%s' % val_list(data), '--val_every=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'nothing to do' not in proc.stdout and 'validating epoch 3 first' in proc.stdout
    assert [g[0] for g in parsed(proc.stdout, train_Sony.VAL_LOG_RE)] == ['3']
    after = consistent_best(best)
    assert (after['epoch'], after['checkpoint'], after['last_validated']) == (3, 'model.ckpt-9', 3)
    proc = train(data, tmp_path, '--epochs=3', '--val_list=%s' % val_list(data), '--val_every=1')
    assert proc.returncode == 0 and 'nothing to do' in proc.stdout, proc.stderr[-3000:]


def test_a_last_epoch_whose_validation_never_finished_is_validated_before_nothing_to_do(
        data, tmp_path):
    """Issue 16, case 7: kill -9 during the last epoch's validation, then the same command: it
    said "nothing to do" and that epoch was never validated. Here the kill is real (right after
    the epoch's log line, when its validation starts) and a run without validation stands in for
    a kill before any of it; either way the rerun validates epoch 2 exactly when best.json does
    not record it, and only then."""
    args = ['--epochs=2', '--val_list=%s' % val_list(data), '--val_every=1']
    proc = popen_train(data, tmp_path, *args)
    for line in proc.stdout:
        if line.startswith('Epoch 2 done'):
            proc.kill()
            break
    proc.communicate(timeout=60)
    best = tmp_path / 'ckpt' / 'best'
    recorded = consistent_best(best)['last_validated']
    assert recorded in (1, 2)  # epoch 1's validation finished before epoch 2 began
    proc = train(data, tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [g[0] for g in parsed(proc.stdout, train_Sony.VAL_LOG_RE)] == (
        ['2'] if recorded == 1 else [])
    assert consistent_best(best)['last_validated'] == 2 and not parsed(proc.stdout,
                                                                       train_Sony.STEP_LOG_RE)
    other = tmp_path / 'other'
    assert train(data, other, '--epochs=2', '--val_list=').returncode == 0
    proc = train(data, other, *(args[:2] + ['--val_every=2']))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'nothing to do' not in proc.stdout
    assert [g[0] for g in parsed(proc.stdout, train_Sony.VAL_LOG_RE)] == ['2']
    assert consistent_best(other / 'ckpt' / 'best')['last_validated'] == 2
    proc = train(data, other, *(args[:2] + ['--val_every=2']))
    assert proc.returncode == 0 and 'nothing to do' in proc.stdout, proc.stderr[-3000:]


STARTUP_LINES = ('device=cpu precision=fp32', 'Sony: 6 pairs in 3 scenes (3 on this rank), 3 steps')


def test_validation_off_is_the_training_without_it(data, trained, tmp_path):
    """--val_list= prints exactly the lines and writes exactly the files of a run without
    validation; the default list without its files adds one line only."""
    proc = train(data, tmp_path, '--epochs=1', '--val_list=')
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [l.startswith(s) for l, s in zip(lines, STARTUP_LINES)] == [True, True]
    regexes = [train_Sony.FIRST_STEP_LOG_RE] + [train_Sony.STEP_LOG_RE] * STEPS + [
        train_Sony.EPOCH_LOG_RE]
    assert len(lines) == 2 + len(regexes) + 1
    assert all(r.match(l) for r, l in zip(regexes, lines[2:]))
    assert lines[-1] == train_Sony.DONE_LOG % (1, tmp_path / 'ckpt' / 'model.ckpt-3')
    assert best_files(tmp_path / 'ckpt') == ['checkpoint', 'model.ckpt-3.data-00000-of-00001',
                                             'model.ckpt-3.index']
    assert [n for n in os.listdir(str(tmp_path / 'result')) if 'tfevents' not in n] == []
    assert sorted(summaries(tmp_path / 'result')) == ['epoch_loss', 'learning_rate', 'loss']
    # The default: the authors' list over data without its files.
    off = [l for l in trained[1].stdout.splitlines() if 'alidation' in l]
    assert len(off) == 1 and off[0].startswith('validation off: ')
    assert not (trained[0] / 'ckpt' / 'best').exists()


def test_an_explicit_validation_list_with_missing_files_fails_before_training(data, tmp_path):
    lines = open(val_list(data)).read().splitlines()
    bad = str(tmp_path / 'val.txt')
    sid_lists.write_list([lines[0].replace('20001_', '20009_')], bad)
    proc = train(data, tmp_path, '--epochs=1', '--val_list=%s' % bad)
    assert_one_line_error(proc, bad + ':1: file not found', '20009_00_')
    assert not os.path.exists(str(tmp_path / 'ckpt'))


def test_a_second_run_on_a_checkpoint_folder_in_use_is_refused_in_one_line(data, tmp_path):
    """Two runs on one folder would delete each other's temporaries and checkpoints (leftover
    cleaning, keep-2): the second stops in one line naming the first; the lock goes with it."""
    first = popen_train(data, tmp_path, '--epochs=1000')
    lock = tmp_path / 'ckpt' / safe_files.LOCK_NAME
    try:
        for line in first.stdout:  # training: the folder is held
            if train_Sony.STEP_LOG_RE.match(line.strip()):
                break
        assert 'pid %d ' % first.pid in lock.read_text()
        # Keep reading its step lines meanwhile: a full pipe would stall it.
        threading.Thread(target=first.stdout.read, daemon=True).start()
        proc = train(data, tmp_path, '--epochs=1000')
        assert_one_line_error(proc, '%s: in use by train_Sony.py (pid %d on ' % (
            tmp_path / 'ckpt', first.pid), 'give --checkpoint_dir another folder')
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=300)
    assert first.returncode == 128 + signal.SIGTERM, first.stderr.read()[-2000:]
    assert not lock.exists()  # released and removed at exit


def test_checkpoint_every_saves_those_epochs_and_the_last_and_resume_follows(data, tmp_path):
    """--checkpoint_every=2 over 3 epochs: saved after epochs 2 and 3 only; the log names the
    newest checkpoint so far; a longer run resumes after epoch 3."""
    proc = train(data, tmp_path, '--epochs=3', '--checkpoint_every=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = parsed(proc.stdout, train_Sony.EPOCH_LOG_RE)
    names = [os.path.basename(g[6]) for g in epochs]
    assert names == ['none', 'model.ckpt-%d' % (2 * STEPS), 'model.ckpt-%d' % (3 * STEPS)]
    assert step_files(tmp_path / 'ckpt') == sorted(
        'model.ckpt-%d.%s' % (s, ext) for s in (2 * STEPS, 3 * STEPS)
        for ext in ('index', 'data-00000-of-00001'))
    assert latest_state(tmp_path)[1:] == (3, 3 * STEPS)
    proc = train(data, tmp_path, '--epochs=4', '--checkpoint_every=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {int(g[0]) for g in parsed(proc.stdout, train_Sony.STEP_LOG_RE)} == {4}
    assert latest_state(tmp_path)[1:] == (4, 4 * STEPS)


# ---------------------------------------------------------------- --camera=bayer


def test_bayer_trains_two_epochs_with_validation(tiny_bayer_dataset, tmp_path):
    lists = dict((k, str(tiny_bayer_dataset / ('Bayer_%s_list.txt' % k))) for k in ('train', 'val'))
    proc = train(tiny_bayer_dataset, tmp_path, '--camera=bayer', '--epochs=2', '--val_every=2',
                 '--train_list=%s' % lists['train'], '--val_list=%s' % lists['val'],
                 '--cache_dir=%s' % (tmp_path / 'cache'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'bayer: 6 pairs in 3 scenes (3 on this rank), 3 steps of batch 1' in proc.stdout
    assert [int(g[0]) for g in parsed(proc.stdout, train_Sony.EPOCH_LOG_RE)] == [1, 2]
    assert [g[0] for g in parsed(proc.stdout, train_Sony.VAL_LOG_RE)] == ['2']
    assert (tmp_path / 'ckpt' / validation.BEST_DIR / validation.BEST_FILE).is_file()
    kinds = sorted(n.split('.')[-3] for _, _, names in os.walk(str(tmp_path / 'cache'))
                   for n in names)
    # 6 training and 1 validation short exposures, 3 + 1 long ones
    assert kinds == ['bayer_any_gt'] * 4 + ['bayer_any_input'] * 7 + ['bayer_any_levels'] * 7


def test_bayer_without_a_list_and_sony_on_another_cfa_fail_in_one_line(tiny_bayer_dataset,
                                                                       tmp_path):
    proc = run_script('train_Sony.py', '--camera=bayer', '--data_dir=%s' % tiny_bayer_dataset,
                      '--checkpoint_dir=%s' % (tmp_path / 'ckpt'), '--device=cpu')
    assert_one_line_error(proc, '--train_list is empty (--camera=bayer has no default lists)')
    proc = train(tiny_bayer_dataset, tmp_path, '--epochs=1', '--cache_dir=%s' % (tmp_path / 'c'),
                 '--train_list=%s' % (tiny_bayer_dataset / 'Bayer_train_list.txt'))
    assert_one_line_error(proc, 'CFA order GRBG, expected RGGB')
    assert not (tmp_path / 'ckpt').exists()


def test_sony_runs_keep_the_sony_cache_kinds(trained, data):
    # (a kill -9 test may have left require_writable_dir's hidden probe: not an entry)
    kinds = set(n.split('.')[-3] for _, _, names in os.walk(str(data / 'cache')) for n in names
                if not n.startswith(safe_files.TEMP_PREFIX))
    assert kinds == {'input', 'gt'}
