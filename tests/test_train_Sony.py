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

import camera
import checkpoints
import cli
import network
import npu_config
import raw_cache
import raw_io
import safe_files
import sid_lists
import train_Sony

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


def test_first_burst_only_keeps_burst_00_of_every_scene(data):
    pairs = sid_lists.read_list(str(data / 'Sony_train_list.txt'), str(data))
    assert train_Sony.training_pairs(pairs) == pairs and len(pairs) == 6
    first = train_Sony.training_pairs(pairs, first_burst_only=True)
    assert [os.path.basename(p.short)[:8] for p in first] == ['00001_00', '00002_00', '00003_00']
    assert list(train_Sony.group_scenes(first)) == list(train_Sony.group_scenes(pairs))


@pytest.mark.parametrize('n_scenes,world,batch', [(3, 1, 1), (7, 2, 1), (7, 3, 2), (161, 8, 1)])
def test_every_rank_runs_the_same_steps_and_an_epoch_covers_every_scene(n_scenes, world, batch):
    scenes = dict((1 + s, [s]) for s in range(n_scenes))
    shapes = dict((s, (40, 60)) for s in range(n_scenes))
    steps = train_Sony.steps_per_epoch(n_scenes, world, batch)
    seen = set()
    for rank in range(world):
        mine = dict((s, scenes[s]) for s in sorted(scenes)[rank::world])
        crops = train_Sony.epoch_crops(mine, shapes, PS, steps * batch,
                                       train_Sony.epoch_rng(0, 1, rank))
        assert len(crops) == steps * batch
        seen |= set(c.pair for c in crops)
    assert seen == set(range(n_scenes))


def test_crop_sampling_is_seeded_uniform_and_flips_each_way():
    scenes = {1: [0, 1], 2: [2]}
    shapes = {0: (40, 60), 1: (40, 60), 2: (34, 32)}
    draw = lambda seed, epoch: train_Sony.epoch_crops(scenes, shapes, PS, 400,  # noqa: E731
                                                      train_Sony.epoch_rng(seed, epoch, 0))
    assert draw(0, 5) == draw(0, 5) and draw(0, 5) != draw(0, 6) and draw(0, 5) != draw(1, 5)
    crops = draw(0, 1)
    assert set(c.pair for c in crops) == {0, 1, 2}
    for c in crops:
        h, w = shapes[c.pair]
        assert 0 <= c.y <= h - PS and 0 <= c.x <= w - PS
    assert {c.y for c in crops if c.pair == 2} == {0, 1, 2}  # last position included
    for field in ('flip_v', 'flip_h', 'transpose'):
        share = np.mean([getattr(c, field) for c in crops])
        assert 0.4 < share < 0.6


def official_patch(full_input, full_gt, crop, ps):
    """The official code's order: crop the RAM images, flip axis 1, flip axis 2, transpose, clip."""
    a = full_input[None, crop.y:crop.y + ps, crop.x:crop.x + ps, :]
    b = full_gt[None, crop.y * 2:crop.y * 2 + ps * 2, crop.x * 2:crop.x * 2 + ps * 2, :]
    if crop.flip_v:
        a, b = np.flip(a, axis=1), np.flip(b, axis=1)
    if crop.flip_h:
        a, b = np.flip(a, axis=2), np.flip(b, axis=2)
    if crop.transpose:
        a, b = np.transpose(a, (0, 2, 1, 3)), np.transpose(b, (0, 2, 1, 3))
    return np.minimum(a, 1.0)[0], b[0]


def test_pipeline_gives_exactly_the_official_in_ram_patches(data, tmp_path):
    pairs = sid_lists.read_list(os.path.join(str(data), 'Sony_train_list.txt'), str(data))
    raws = [(p.short, 'input') for p in pairs] + [(p[1], 'gt') for p in pairs]
    entries = raw_cache.build_cache(raws, str(tmp_path / 'cache'), str(data), workers=1,
                                    progress=False)
    cached = train_Sony.CachedPairs(pairs, entries)
    scenes = train_Sony.group_scenes(pairs)
    shapes = cached.check_shapes(range(len(pairs)), PS)
    crops = train_Sony.epoch_crops(scenes, shapes, PS, 24, train_Sony.epoch_rng(7, 1, 0))
    assert len(set(crops)) == 24 and {c.transpose for c in crops} == {0, 1}
    with tf.Graph().as_default():
        batch = train_Sony.input_pipeline(cached, lambda: iter(crops), PS, 1)
        with tf.Session() as sess:
            got = [sess.run(batch) for _ in crops]
    # The official path: whole images decoded to float32 and amplified (unclipped) in RAM.
    full = {}
    for crop, (inp, gt, scene, ratio, ready) in zip(crops, got):
        pair = pairs[crop.pair]
        r = sid_lists.exposure_ratio(pair.short, pair[1])
        if crop.pair not in full:
            full[crop.pair] = (raw_io.pack_raw(pair.short) * np.float32(r),
                               raw_io.read_ground_truth(pair[1]))
        want_inp, want_gt = official_patch(full[crop.pair][0], full[crop.pair][1], crop, PS)
        np.testing.assert_array_equal(inp[0], want_inp)
        np.testing.assert_array_equal(gt[0], want_gt)
        assert (scene[0], ratio[0]) == (sid_lists.parse_name(pair.short)[0], r)
        assert ready[0] > 0


def test_patch_larger_than_a_raw_is_an_error_naming_the_file(data, tmp_path):
    pairs = sid_lists.read_list(os.path.join(str(data), 'Sony_train_list.txt'), str(data))[:1]
    entries = raw_cache.build_cache([(pairs[0].short, 'input'), (pairs[0][1], 'gt')],
                                    str(tmp_path), str(data), workers=1, progress=False)
    with pytest.raises(cli.SidError) as e:
        train_Sony.CachedPairs(pairs, entries).check_shapes([0], 512)
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


def test_validation_pairs_default_explicit_and_off(data, tmp_path):
    said = []
    got = train_Sony.validation_pairs(val_list(data), True, str(data), said.append)
    assert [os.path.basename(p.short)[:8] for p in got] == ['20001_00'] and not said
    assert train_Sony.validation_pairs('', False, str(data), said.append) is None and not said
    # The default list whose files are absent (the authors' list over the tiny data): off, 1 line.
    official = os.path.join(ROOT, 'Sony_val_list.txt')
    assert train_Sony.validation_pairs(official, False, str(data), said.append) is None
    assert len(said) == 1 and said[0].startswith(
        'validation off: %s: 56 files of its 36 burst _00 pairs are missing under %s'
        % (official, data))
    assert train_Sony.validation_pairs(str(tmp_path / 'none.txt'), False, str(data),
                                       said.append) is None
    assert said[1].startswith('validation off: %s not found' % (tmp_path / 'none.txt'))
    # Named on the command line, the same list is an error naming its first missing file.
    with pytest.raises(cli.SidError) as e:
        train_Sony.validation_pairs(official, True, str(data), said.append)
    assert str(e.value).startswith('%s:1: file not found: ' % official)
    lines = open(val_list(data)).read().splitlines()
    only_burst_1 = str(tmp_path / 'burst1.txt')
    sid_lists.write_list([l for l in lines if '_01_' in l.split()[0]], only_burst_1)
    with pytest.raises(cli.SidError) as e:
        train_Sony.validation_pairs(only_burst_1, True, str(data), said.append)
    assert 'no pairs with burst index _00' in str(e.value) and len(said) == 2


class _Stop(object):
    def __init__(self, signum=None):
        self.signum = signum


def test_validate_scores_every_pair_and_stops_on_a_signal(data, tmp_path):
    import inference
    import metrics
    pairs = train_Sony.training_pairs(sid_lists.read_list(val_list(data), str(data)), True)
    raws = [(p.short, 'input') for p in pairs] + [(p[1], 'gt') for p in pairs]
    entries = raw_cache.build_cache(raws, str(tmp_path / 'cache'), str(data), workers=1,
                                    progress=False)
    cached = train_Sony.CachedPairs(pairs, entries)
    with tf.Graph().as_default():
        packed, output = inference.build_network()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            scores = train_Sony.validate(sess, packed, output, cached, _Stop())
            assert list(scores) == [0]  # the one burst _00 pair, by index
            psnr, ssim = scores[0]
            # The official path: pack_raw + amplify, the network, 8-bit images as test_Sony writes.
            x = raw_io.amplify(raw_io.pack_raw(pairs[0].short), cached.ratios[0])
            out = inference.to_uint(sess.run(output, {packed: x[None]})[0])
            gt = inference.to_uint(raw_io.read_ground_truth(pairs[0][1]))
            assert (psnr, ssim) == (metrics.psnr(out, gt), metrics.ssim(out, gt, 'skimage'))
            assert train_Sony.validate(sess, packed, output, cached, _Stop(15)) is None


def best_files(folder):
    return sorted(os.listdir(str(folder)))


def test_best_checkpoint_changes_only_when_the_psnr_improves_and_survives_a_restart(
        data, tmp_path, monkeypatch):
    """Scripted scores drive the rule; the weights are set to the epoch before each validation,
    so the best checkpoint's content tells which epoch it holds."""
    pairs = train_Sony.training_pairs(sid_lists.read_list(val_list(data), str(data)), True)
    held = type('Held', (), {'pairs': pairs, 'profile': camera.SONY})()
    best_dir = tmp_path / 'ckpt' / 'best'
    scores = []
    monkeypatch.setattr(train_Sony, 'validate', lambda *args: {0: scores.pop(0)})
    said = []

    def run(sequence, fresh_start, first_epoch):
        """Validate after each epoch of `sequence` ((psnr, ssim) each); the parsed log lines."""
        scores.extend(sequence)
        with tf.Graph().as_default():
            network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
            weights_saver = tf.train.Saver(network.model_variables())
            bias = [v for v in network.model_variables() if v.op.name == 'g_conv1_1/biases'][0]
            validator = train_Sony.Validator(held, 'val.txt', str(best_dir), weights_saver,
                                             fresh_start, said.append,
                                             npu_config.Distribution('none'))
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                writer = tf.summary.FileWriter(str(tmp_path / 'tb'))
                for epoch in range(first_epoch, first_epoch + len(sequence)):
                    sess.run(bias.assign(tf.fill(tf.shape(bias), float(epoch))))
                    assert validator(sess, epoch, 10 * epoch, writer, _Stop())
                writer.close()
        return [train_Sony.VAL_LOG_RE.match(line).groups() for line in said
                if train_Sony.VAL_LOG_RE.match(line)]

    def best_epoch_held():
        prefix = checkpoints.find(str(best_dir))
        return int(tf.train.load_variable(prefix, 'g_conv1_1/biases')[0]), prefix

    logged = run([(20.0, 0.5), (19.0, 0.6), (21.0, 0.4), (21.0, 0.9), (18.0, 0.1)], True, 1)
    assert [(g[2], g[4], g[5]) for g in logged] == [
        ('20.0000', '20.0000', '1'), ('19.0000', '20.0000', '1'), ('21.0000', '21.0000', '3'),
        ('21.0000', '21.0000', '3'), ('18.0000', '21.0000', '3')]
    assert best_epoch_held() == (3, str(best_dir / 'model.ckpt-30'))
    assert best_files(best_dir) == ['best.json', 'checkpoint', 'model.ckpt-30.data-00000-of-00001',
                                    'model.ckpt-30.index']
    record = json.load(open(str(best_dir / 'best.json')))
    assert (record['epoch'], record['global_step'], record['psnr'], record['checkpoint'],
            record['ssim_protocol']) == (3, 30, 21.0, 'model.ckpt-30', 'skimage')
    assert record['ssim'] == pytest.approx(0.4, abs=1e-14)  # through float32 pairs (48 bits)
    assert record['pairs'] == [os.path.basename(pairs[0].short)]
    assert not [n for n in os.listdir(str(best_dir.parent)) if n != 'best']  # nothing else

    # A restart reads the best score back (and clears a killed save's leftovers in best/).
    (best_dir / '.tmp-killed').write_bytes(b'x')
    del said[:]
    logged = run([(20.5, 0.9), (22.0, 0.8)], False, 6)
    assert said[0] == 'removed 1 leftovers of an interrupted save from %s (.tmp-killed)' % best_dir
    assert [(g[0], g[4], g[5]) for g in logged] == [('6', '21.0000', '3'), ('7', '22.0000', '7')]
    assert best_epoch_held() == (7, str(best_dir / 'model.ckpt-70'))

    # best/ of an earlier run while the main folder has nothing to resume: refused.
    with pytest.raises(cli.SidError) as e:
        run([], True, 1)
    assert 'holds the best checkpoint of an earlier run (epoch 7)' in str(e.value)
    # A record of other pairs cannot be compared: refused, naming the file.
    other = dict(record, pairs=['20002_00_0.1s.dng'], checkpoint='model.ckpt-70')
    with open(str(best_dir / 'best.json'), 'w') as f:
        json.dump(other, f)
    with pytest.raises(cli.SidError) as e:
        run([], False, 1)
    assert str(e.value).startswith('%s: the best checkpoint was scored on other validation pairs'
                                   % (best_dir / 'best.json'))
    # A kill between the checkpoint and its record: one warning, the next validation rewrites both.
    with open(str(best_dir / 'best.json'), 'w') as f:
        json.dump(dict(record, checkpoint='model.ckpt-30'), f)
    del said[:]
    logged = run([(1.0, 0.1)], False, 8)
    assert said[0] == ('warning: %s names model.ckpt-30 but %s holds model.ckpt-70 (an '
                       'interrupted update); the next validation replaces both'
                       % (best_dir / 'best.json', best_dir))
    assert [(g[4], g[5]) for g in logged] == [('1.0000', '8')]
    assert best_epoch_held() == (8, str(best_dir / 'model.ckpt-80'))


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


def consistent_best(best_dir):
    """best.json, once it describes the checkpoint best/ holds."""
    record = json.load(open(str(best_dir / 'best.json')))
    assert record['checkpoint'] == os.path.basename(checkpoints.find(str(best_dir)))
    return record


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


KEEP_BEST_CHILD = """
import os, signal, sys
import tensorflow.compat.v1 as tf
import network, safe_files, train_Sony
tf.disable_v2_behavior()
best_dir, point = sys.argv[1], sys.argv[2]
with tf.Graph().as_default():
    network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
    saver = tf.train.Saver(network.model_variables())
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        train_Sony.keep_best(saver, sess, best_dir, 10, {'epoch': 1, 'psnr': 20.0})
        def kill(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        module = train_Sony if point == 'write_record' else safe_files
        real = getattr(module, point)
        def kill_after(*args, **kwargs):
            result = real(*args, **kwargs)
            kill()
            return result
        setattr(module, point, kill if point == 'write_record' else kill_after)
        train_Sony.keep_best(saver, sess, best_dir, 20, {'epoch': 2, 'psnr': 21.0})
"""


@pytest.mark.parametrize('point', ['write_record', 'fsync_tree', 'replace_folder'])
def test_kill_9_at_each_step_of_keep_best_leaves_best_and_its_record_agreeing(tmp_path, point):
    """best/ and best.json are one unit (issue 16, case 6): killed before the record, before the
    swap, or right after it, best/ holds the old pair or the new one; the leftover goes at the
    next start."""
    best = tmp_path / 'ckpt' / 'best'
    proc = subprocess.run([sys.executable, '-c', KEEP_BEST_CHILD, str(best), point],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2'),
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    record = consistent_best(best)
    assert (record['epoch'], record['checkpoint']) == (
        (2, 'model.ckpt-20') if point == 'replace_folder' else (1, 'model.ckpt-10'))
    left = [n for n in os.listdir(str(best.parent)) if n != 'best']
    assert len(left) == 1 and left[0].startswith('.tmp-') and left[0].endswith('-best')
    assert checkpoints.remove_leftovers(str(best.parent)) == left
    assert os.listdir(str(best.parent)) == ['best']


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
    assert len(lines) == 2 + len(regexes)
    assert all(r.match(l) for r, l in zip(regexes, lines[2:]))
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

def pipeline_patches(data, crops):
    with tf.Graph().as_default():
        batch = train_Sony.input_pipeline(data, lambda: iter(crops), PS, 1)
        with tf.Session() as sess:
            return [sess.run(batch)[:2] for _ in crops]


def cached_pairs(list_path, data_dir, cache, profile):
    pairs = sid_lists.read_list(list_path, data_dir)
    entries = raw_cache.build_cache(camera.cache_jobs(pairs, profile), cache, data_dir, workers=1,
                                    progress=False)
    return pairs, train_Sony.CachedPairs(pairs, entries, profile)


def test_bayer_patches_are_the_formula_with_each_files_levels_and_the_red_cut(
        tiny_bayer_dataset, tmp_path):
    """Another camera (12-bit GRBG, black 600-603 per site): input (counts - black_c) /
    (white_c - black_c) at the R, G, B, G sites of the mosaic cut to start on red (the first and
    last columns go), amplified, clipped; target the development cut alike, at 2x the offset."""
    import rawpy
    pairs, data = cached_pairs(str(tiny_bayer_dataset / 'Bayer_train_list.txt'),
                               str(tiny_bayer_dataset), str(tmp_path), camera.BAYER)
    shapes = data.check_shapes(range(len(pairs)), PS)
    assert set(shapes.values()) == {(48, 67)}  # 96 x 136 -> 96 x 134
    crops = train_Sony.epoch_crops(train_Sony.group_scenes(pairs), shapes, PS, 6,
                                   train_Sony.epoch_rng(3, 1, 0))
    black = {(0, 0): 600, (0, 1): 601, (1, 0): 602, (1, 1): 603}  # the generator's, per site
    for crop, (inp, gt) in zip(crops, pipeline_patches(data, crops)):
        pair = pairs[crop.pair]
        with rawpy.imread(pair.short) as raw:
            counts = raw.raw_image_visible.astype(np.float32)[:, 1:-1]  # R at column 1
        full = np.stack([(np.maximum(counts[y::2, x::2] - black[(y, (x + 1) % 2)], 0) /
                          np.float32(4095 - black[(y, (x + 1) % 2)]))
                         for y, x in raw_io.BAYER_OFFSETS], axis=-1)
        full *= np.float32(sid_lists.exposure_ratio(pair.short, pair.long))
        with rawpy.imread(pair.long) as raw:
            rgb = raw.postprocess(**dict(raw_io.GT_POSTPROCESS, user_flip=0))[:, 1:-1]
        want = official_patch(full, rgb.astype(np.float32) / np.float32(65535), crop, PS)
        np.testing.assert_allclose(inp[0], want[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(gt[0], want[1])
        assert 0 < inp[0].mean() and inp[0].max() <= 1


def test_bayer_path_on_rggb_raws_with_the_sony_levels_gives_the_sony_patches(data, tmp_path):
    """The Sony set's raws (RGGB, 512/16383, even sides: the cut keeps everything) through
    --camera=bayer: the same patches bit for bit, from cache entries of their own kinds."""
    list_path = os.path.join(str(data), 'Sony_train_list.txt')
    pairs, sony = cached_pairs(list_path, str(data), str(tmp_path), camera.SONY)
    _, bayer = cached_pairs(list_path, str(data), str(tmp_path), camera.BAYER)
    shapes = sony.check_shapes(range(len(pairs)), PS)
    assert bayer.check_shapes(range(len(pairs)), PS) == shapes
    assert set(sony.inputs).isdisjoint(bayer.inputs) and set(sony.targets).isdisjoint(bayer.targets)
    crops = train_Sony.epoch_crops(train_Sony.group_scenes(pairs), shapes, PS, 6,
                                   train_Sony.epoch_rng(5, 1, 0))
    for (a, b), (c, d) in zip(pipeline_patches(sony, crops), pipeline_patches(bayer, crops)):
        assert a.tobytes() == c.tobytes() and b.tobytes() == d.tobytes()


def test_bayer_trains_two_epochs_with_validation(tiny_bayer_dataset, tmp_path):
    lists = dict((k, str(tiny_bayer_dataset / ('Bayer_%s_list.txt' % k))) for k in ('train', 'val'))
    proc = train(tiny_bayer_dataset, tmp_path, '--camera=bayer', '--epochs=2', '--val_every=2',
                 '--train_list=%s' % lists['train'], '--val_list=%s' % lists['val'],
                 '--cache_dir=%s' % (tmp_path / 'cache'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'bayer: 6 pairs in 3 scenes (3 on this rank), 3 steps of batch 1' in proc.stdout
    assert [int(g[0]) for g in parsed(proc.stdout, train_Sony.EPOCH_LOG_RE)] == [1, 2]
    assert [g[0] for g in parsed(proc.stdout, train_Sony.VAL_LOG_RE)] == ['2']
    assert (tmp_path / 'ckpt' / train_Sony.BEST_DIR / train_Sony.BEST_FILE).is_file()
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
