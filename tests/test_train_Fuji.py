"""train_Fuji.py: train_Sony.py with the Fuji profile. X-Trans patches at 3x the packed offset as
the authors' Fuji code cuts them, a two-epoch run with the released Fuji variable shapes, and
resume. Runs use the shared tiny X-Trans set (512 x 520 raws) and 32 x 32 packed patches."""
import os
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import run_script

import camera
import raw_cache
import raw_io
import sid_lists
import pipeline
import validation
import train_Sony

PS = 32
STEPS = 2  # the tiny X-Trans set has 2 training scenes


def train(data, work, *args):
    """train_Fuji.py on the tiny X-Trans set, outputs and cache under `work`."""
    work = str(work)
    return run_script('train_Fuji.py', '--data_dir=%s' % data,
                      '--train_list=%s' % os.path.join(str(data), 'Fuji_train_list.txt'),
                      '--checkpoint_dir=%s' % os.path.join(work, 'ckpt'),
                      '--result_dir=%s' % os.path.join(work, 'result'),
                      '--cache_dir=%s' % os.path.join(work, 'cache'), '--ps=%d' % PS,
                      '--device=cpu', *args)


@pytest.fixture(scope='module')
def trained(tiny_fuji_dataset, tmp_path_factory):
    """One two-epoch run with samples at epoch 2, shared read-only."""
    work = tmp_path_factory.mktemp('fuji_trained')
    proc = train(tiny_fuji_dataset, work, '--epochs=2', '--save_freq=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc


def test_patches_are_the_authors_x_trans_crops(tiny_fuji_dataset, tmp_path):
    """Input: the packed, normalised, amplified, clipped crop; target: the developed long exposure
    at 3x the offset and size, both flipped alike (the official order)."""
    pairs = sid_lists.read_list(str(tiny_fuji_dataset / 'Fuji_train_list.txt'),
                                str(tiny_fuji_dataset))
    kinds = camera.PACKINGS['xtrans'].cache_kinds
    raws = [(p.short, kinds[0]) for p in pairs] + [(p.long, kinds[1]) for p in pairs]
    entries = raw_cache.build_cache(raws, str(tmp_path), str(tiny_fuji_dataset), workers=1,
                                    progress=False)
    data = pipeline.CachedPairs(pairs, entries, camera.FUJI)
    shapes = data.check_shapes(range(len(pairs)), PS)
    assert set(shapes.values()) == {(170, 172)}
    for flips in ((0, 0, 0), (1, 0, 1), (0, 1, 1)):
        crop = pipeline.Crop(1, 101, 37, *flips)
        pair = pairs[crop.pair]
        ratio = sid_lists.exposure_ratio(pair.short, pair.long)
        full = np.minimum(camera.packed_raw(pair.short, camera.FUJI) * np.float32(ratio), 1.0)
        gt = raw_io.postprocess(pair.long, 'xtrans').astype(np.float32) / np.float32(65535)
        a = full[crop.y:crop.y + PS, crop.x:crop.x + PS]
        b = gt[3 * crop.y:3 * crop.y + 3 * PS, 3 * crop.x:3 * crop.x + 3 * PS]
        for flip, axis in ((crop.flip_v, 0), (crop.flip_h, 1)):
            if flip:
                a, b = np.flip(a, axis), np.flip(b, axis)
        if crop.transpose:
            a, b = a.transpose(1, 0, 2), b.transpose(1, 0, 2)
        inp, target = data.patch(crop, PS)
        assert inp.shape == (PS, PS, 9) and target.shape == (3 * PS, 3 * PS, 3)
        np.testing.assert_array_equal(inp, a)
        np.testing.assert_array_equal(target, b)


def test_two_epochs_save_the_released_fuji_layout(trained):
    work, proc = trained
    assert 'Fuji: 4 pairs in 2 scenes (2 on this rank), %d steps of batch 1' % STEPS in proc.stdout
    prefix = tf.train.latest_checkpoint(str(work / 'ckpt'))
    assert int(tf.train.load_variable(prefix, 'epoch')) == 2
    assert int(tf.train.load_variable(prefix, 'global_step')) == 2 * STEPS
    shapes = dict(tf.train.list_variables(prefix))
    assert shapes['g_conv1_1/weights'] == [3, 3, 9, 32]
    assert shapes['g_conv10/weights'] == [1, 1, 32, 27]
    from PIL import Image
    samples = sorted(os.listdir(str(work / 'result' / '0002')))
    assert len(samples) == STEPS
    with Image.open(str(work / 'result' / '0002' / samples[0])) as im:
        assert im.size == (2 * 3 * PS, 3 * PS)  # ground truth | output, 3x the packed patch
    cached = sorted(n.split('.')[-3] for _, _, names in os.walk(str(work / 'cache'))
                    for n in names)
    assert cached == ['xtrans_gt'] * 2 + ['xtrans_input'] * 4


def test_resume_continues_at_the_next_epoch(tiny_fuji_dataset, trained, tmp_path):
    work, _ = trained
    shutil.copytree(str(work / 'ckpt'), str(tmp_path / 'ckpt'))
    shutil.copytree(str(work / 'cache'), str(tmp_path / 'cache'))
    proc = train(tiny_fuji_dataset, tmp_path, '--epochs=3')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'epoch 2 done, starting epoch 3' in proc.stdout
    assert 'Epoch 3 done: steps=%d' % STEPS in proc.stdout and 'Epoch 2 done' not in proc.stdout
    prefix = tf.train.latest_checkpoint(str(tmp_path / 'ckpt'))
    assert int(tf.train.load_variable(prefix, 'global_step')) == 3 * STEPS


def test_validation_on_x_trans_keeps_a_best_checkpoint_that_test_fuji_runs(tiny_fuji_dataset,
                                                                           tmp_path):
    """Validation follows the profile: 9-channel cache entries, Fuji levels, block 3."""
    proc = train(tiny_fuji_dataset, tmp_path, '--epochs=1', '--val_every=1',
                 '--val_list=%s' % (tiny_fuji_dataset / 'Fuji_val_list.txt'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [train_Sony.VAL_LOG_RE.match(l) for l in proc.stdout.splitlines()]
    found = [m for m in found if m]
    assert len(found) == 1 and found[0].group(1) == '1'
    best = tmp_path / 'ckpt' / validation.BEST_DIR
    assert (best / validation.BEST_FILE).is_file()
    test = run_script('test_Fuji.py', '--data_dir=%s' % tiny_fuji_dataset,
                      '--test_list=%s' % (tiny_fuji_dataset / 'Fuji_test_list.txt'),
                      '--checkpoint_dir=%s' % best, '--result_dir=%s' % (tmp_path / 'res'))
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'tested 1 pairs' in test.stdout
