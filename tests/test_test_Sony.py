"""test_Sony.py: checkpoints load or fail loudly, outputs are the official names and contents,
finished pairs are skipped, stale, incomplete or inexact results are recomputed (tiling:
tests/test_inference.py)."""
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import bench_inference
import cli
import inference
import network
import npu_config
import raw_io
import safe_files
import sid_lists
import test_Sony
from conftest import run_script


def read_png(path):
    with Image.open(str(path)) as im:
        assert im.mode == 'RGB'
        return np.asarray(im).astype(np.int16)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A checkpoint with network.py's names (as the released model) and weights that matter."""
    folder = tmp_path_factory.mktemp('ckpt')
    bench_inference.make_checkpoint(str(folder / 'model.ckpt'), seed=1)
    return folder


def checkpoint_stamp_of(path):
    return test_Sony.finished_png(path)[0][test_Sony.STAMP_KEY]


def restored_session(prefix):
    graph = tf.Graph()
    with graph.as_default():
        packed, output = inference.build_network()
        sess = tf.Session(graph=graph)
        tf.train.Saver(network.model_variables()).restore(sess, prefix)
    return sess, packed, output


def test_checkpoint_to_test_refuses_missing_and_unreadable_ones(tmp_path, checkpoint):
    with tf.Graph().as_default():
        network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
        variables = network.model_variables()
        prefix = str(checkpoint / 'model.ckpt')
        assert test_Sony.checkpoint_to_test(str(checkpoint), variables) == prefix
        assert test_Sony.checkpoint_to_test(prefix, variables) == prefix
        with pytest.raises(cli.SidError, match='no checkpoint found.*refusing'):
            test_Sony.checkpoint_to_test(str(tmp_path), variables)
        # An unreadable newest checkpoint: no quiet fallback, but the previous one is named.
        folder = tmp_path / 'ckpt'
        for step in (1, 2):
            bench_inference.make_checkpoint(str(folder / ('model.ckpt-%d' % step)), seed=step)
        data = folder / 'model.ckpt-2.data-00000-of-00001'
        with open(str(data), 'r+b') as f:
            f.truncate(os.path.getsize(str(data)) // 2)
        with pytest.raises(cli.SidError) as e:
            test_Sony.checkpoint_to_test(str(folder), variables)
        assert str(e.value) == (
            '%s: unreadable checkpoint (Read less bytes than requested); to test the previous '
            'checkpoint instead, pass --checkpoint_dir=%s' % (folder / 'model.ckpt-2',
                                                              folder / 'model.ckpt-1'))
        assert test_Sony.checkpoint_to_test(str(folder / 'model.ckpt-1'), variables)


def test_inference_stamp_separates_what_changes_pixels():
    cpu, shape = npu_config.Runtime('cpu', 'fp32', None), (1424, 2128)
    exact = test_Sony.inference_stamp(cpu, 0, 0, shape)
    assert exact == 'device=cpu precision=fp32 tiling=exact'
    for tile, overlap in ((512, 96), (1072, 128), (16, 96), (4096, 0)):  # the last: one tile
        assert test_Sony.inference_stamp(cpu, tile, overlap, shape) == exact
    assert test_Sony.inference_stamp(cpu, 512, 64, shape) == (
        'device=cpu precision=fp32 tiling=inexact tile=512 overlap=64')
    npu = npu_config.Runtime('npu', 'mixed', 'allow_mix_precision')
    assert test_Sony.inference_stamp(npu, 0, 0, shape) == (
        'device=npu precision=mixed npu_precision_mode=allow_mix_precision tiling=exact')


def test_select_pairs_first_burst_and_name_clashes(tiny_dataset):
    list_path = str(tiny_dataset / 'Sony_test_list.txt')
    pairs = sid_lists.read_list(list_path, str(tiny_dataset))
    first = test_Sony.select_pairs(pairs, False, list_path)
    assert [burst for _, _, burst, _ in first] == [0] * (len(pairs) // 2)
    assert len(test_Sony.select_pairs(pairs, True, list_path)) == len(pairs)
    same_name = r'Sony_test_list.txt:\d+: gives the same result name'
    with pytest.raises(cli.SidError, match=same_name):
        test_Sony.select_pairs(pairs + pairs[:1], True, list_path)


def test_end_to_end_outputs_skip_and_refusals(tmp_path, tiny_dataset, checkpoint):
    data = ['--data_dir=%s' % tiny_dataset,
            '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt')]
    result = tmp_path / 'result'
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % checkpoint,
                                                '--result_dir=%s' % result]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('device=cpu precision=fp32')
    assert 'tested 2 pairs, skipped 0' in proc.stdout

    pairs = sid_lists.read_list(str(tiny_dataset / 'Sony_test_list.txt'), str(tiny_dataset))
    final = result / 'final'
    expected_names = set()
    sess, packed_ph, output = restored_session(str(checkpoint / 'model.ckpt'))
    with sess:
        for pair in pairs:
            scene, burst, _ = sid_lists.parse_name(pair.short)
            if burst:
                continue
            ratio = sid_lists.exposure_ratio(pair.short, pair.long)
            stem = str(final / ('%05d_00_%d_' % (scene, int(round(ratio)))))
            expected_names.update(os.path.basename(stem + k + '.png') for k in test_Sony.KINDS)
            gt = inference.to_uint(raw_io.read_ground_truth(pair.long))
            assert np.array_equal(read_png(stem + 'gt.png'), gt)
            packed = raw_io.amplify(raw_io.pack_raw(pair.short), ratio)
            out, = inference.run_network(sess, packed_ph, output, packed)
            assert np.abs(read_png(stem + 'out.png') - out).max() <= 1  # the restored weights
            scale = read_png(stem + 'scale.png')
            assert scale.shape == gt.shape == (96, 136, 3)
            # The official baseline: postprocessed short exposure times mean(gt) / its own mean.
            short = raw_io.postprocess(pair.short).astype(np.float64) / 65535
            gt_float = raw_io.read_ground_truth(pair.long).astype(np.float64)
            reference = np.clip(short * gt_float.mean() / short.mean() * 255, 0, 255)
            assert np.abs(scale - np.floor(reference + 0.5)).max() <= 1
    assert set(os.listdir(str(final))) == expected_names  # and no temporary files
    stamp = checkpoint_stamp_of(str(final / sorted(expected_names)[1]))
    assert sorted(expected_names)[1].endswith('_out.png') and stamp.startswith('sha256:')
    assert stamp.endswith(str(checkpoint / 'model.ckpt'))
    mtimes = dict((n, os.path.getmtime(str(final / n))) for n in expected_names)

    # eval.py scores them with default protocol and names the checkpoint.
    proc = run_script('eval.py', '--result_dir=%s' % result)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r'^average psnr: [\d.]+$', proc.stdout, re.M)
    assert 'checkpoint %s' % stamp in proc.stdout
    assert os.path.isfile(str(final / 'eval_skimage.csv'))

    # All pairs, tiled exactly: the _00 pairs are skipped (untouched), the _01 pairs computed.
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % checkpoint, '--all_pairs',
                                                '--result_dir=%s' % result, '--tile=32']))
    assert proc.returncode == 0, proc.stderr
    assert 'tested 2 pairs, skipped 2' in proc.stdout
    assert len([n for n in os.listdir(str(final)) if re.match(r'\d{5}_01_\d+_out\.png$', n)]) == 2
    assert all(os.path.getmtime(str(final / n)) == t for n, t in mtimes.items())

    # Another checkpoint on the same results: its outputs are recomputed, never mixed.
    other = tmp_path / 'other'
    bench_inference.make_checkpoint(str(other / 'model.ckpt'), seed=2)
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % other,
                                                '--result_dir=%s' % result, '--tile=32']))
    assert proc.returncode == 0, proc.stderr
    assert ('2 outputs were made with another checkpoint or other inference settings: '
            'recomputing them') in proc.stdout
    assert 'tested 2 pairs, skipped 0' in proc.stdout
    for name, before in mtimes.items():
        changed = os.path.getmtime(str(final / name)) != before
        assert changed == name.endswith('_out.png')  # gt and scale do not depend on the weights
    assert checkpoint_stamp_of(str(final / sorted(expected_names)[1])).endswith(
        str(other / 'model.ckpt'))

    # No checkpoint: one-line error, exit 1, nothing written.
    empty = tmp_path / 'empty'
    empty.mkdir()
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % empty,
                                                '--result_dir=%s' % (tmp_path / 'none')]))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: no checkpoint found (expected model.ckpt-<step>.index, as train_Sony.py '
        'writes, or the released model.ckpt.index); train with train_Sony.py or download the '
        'authors\' model - refusing to run random weights' % empty]
    assert not (tmp_path / 'none').exists()


def test_unwritable_result_folder_fails_in_one_line_before_any_work(tmp_path, tiny_dataset,
                                                                    checkpoint):
    (tmp_path / 'file').write_text('x')  # root ignores chmod: a folder under a regular file
    proc = run_script('test_Sony.py', '--data_dir=%s' % tiny_dataset,
                      '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt'),
                      '--checkpoint_dir=%s' % checkpoint,
                      '--result_dir=%s' % (tmp_path / 'file' / 'result'))
    assert proc.returncode == 1
    assert [l for l in proc.stderr.splitlines() if l.startswith('error:') or 'Traceback' in l] == [
        'error: %s: cannot write test results (Not a directory)'
        % (tmp_path / 'file' / 'result' / 'final')]


def test_incomplete_or_inexact_outputs_are_not_done_and_eval_names_inexact_tiling(
        tmp_path, tiny_dataset, checkpoint):
    """Issue 9.3: the stamps sit in the PNG header, which survives truncation; outputs of
    --tile_overlap=0 differ from the model's (seams) and must not count for a default run.
    Issue 9.2/9.8: a copied checkpoint folder is used as is; a dead run's temporaries go."""
    data = ['--data_dir=%s' % tiny_dataset,
            '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt'),
            '--result_dir=%s' % (tmp_path / 'result')]
    final = tmp_path / 'result' / 'final'
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % checkpoint, '--tile=32',
                                                '--tile_overlap=0']))
    assert proc.returncode == 0, proc.stderr
    outs = sorted(n for n in os.listdir(str(final)) if n.endswith('_out.png'))
    assert len(outs) == 2
    with Image.open(str(final / outs[0])) as im:
        assert im.info[test_Sony.INFERENCE_KEY] == (
            'device=cpu precision=fp32 tiling=inexact tile=32 overlap=0')
    proc = run_script('eval.py', '--result_dir=%s' % (tmp_path / 'result'))
    assert proc.returncode == 0, proc.stderr
    assert ('WARNING: 2 of 2 outputs tiled with less than the exact overlap (first: %s)'
            % outs[0]) in proc.stdout.splitlines()[0]

    # A default run recomputes the inexact outputs, and the truncated ground truth.
    gt = final / outs[0].replace('_out', '_gt')
    size = os.path.getsize(str(gt))
    with open(str(gt), 'r+b') as f:
        f.truncate(size - 200)
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % checkpoint]))
    assert proc.returncode == 0, proc.stderr
    assert '1 PNGs are incomplete or corrupt: recomputing them' in proc.stdout
    assert ('2 outputs were made with another checkpoint or other inference settings: '
            'recomputing them') in proc.stdout
    assert 'tested 2 pairs, skipped 0' in proc.stdout
    assert os.path.getsize(str(gt)) == size and test_Sony.finished_png(str(gt))
    proc = run_script('eval.py', '--result_dir=%s' % (tmp_path / 'result'))
    assert proc.returncode == 0 and 'WARNING' not in proc.stdout, proc.stdout

    # A truncated output and a killed run's temporary; the checkpoint folder copied elsewhere
    # (its state file names the original's absolute path): the copy's files are used.
    out = final / outs[1]
    with open(str(out), 'r+b') as f:
        f.truncate(os.path.getsize(str(out)) // 2)
    (final / '.tmp-k1ll3d-10003_00_300_out.png').write_bytes(b'\x89PNG')
    copy = tmp_path / 'copy'
    shutil.copytree(str(checkpoint), str(copy))
    assert str(checkpoint) in (copy / 'checkpoint').read_text()
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % copy]))
    assert proc.returncode == 0, proc.stderr
    assert 'removed 1 temporary files of an interrupted run from %s' % final in proc.stdout
    assert 'checkpoint %s (42 variables)' % (copy / 'model.ckpt') in proc.stdout
    assert '1 PNGs are incomplete or corrupt: recomputing them' in proc.stdout
    assert 'tested 1 pairs, skipped 1' in proc.stdout
    assert test_Sony.finished_png(str(out)) and not [n for n in os.listdir(str(final))
                                                     if n.startswith('.tmp-')]


def test_a_result_folder_in_use_by_another_run_is_refused_in_one_line(tmp_path, tiny_dataset,
                                                                      checkpoint):
    import fcntl
    final = tmp_path / 'result' / 'final'
    os.makedirs(str(final))
    with open(str(final / safe_files.LOCK_NAME), 'w') as held:  # as another live test_Sony.py
        held.write('test_Sony.py (pid 4242 on elsewhere)\n')
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = run_script('test_Sony.py', '--data_dir=%s' % tiny_dataset,
                          '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt'),
                          '--checkpoint_dir=%s' % checkpoint,
                          '--result_dir=%s' % (tmp_path / 'result'))
    assert proc.returncode == 1
    assert [l for l in proc.stderr.splitlines() if l.startswith('error:') or 'Traceback' in l] == [
        'error: %s: in use by test_Sony.py (pid 4242 on elsewhere); wait for it to end or give '
        '--result_dir another folder' % final]
    assert os.listdir(str(final)) == [safe_files.LOCK_NAME]  # nothing written, nothing removed


def test_bayer_outputs_cover_the_red_cut_and_the_network_sees_enhances_packing(
        tmp_path, tiny_bayer_dataset, checkpoint):
    """--camera=bayer on another camera's pairs (12-bit GRBG, black 600-603 per site): full-size
    outputs of the mosaic cut to start on red (96 x 134 of 96 x 136), the network's input being
    scripts/enhance.py's packing of that area; eval.py scores them; no --test_list: one line."""
    import camera
    test_list = str(tiny_bayer_dataset / 'Bayer_test_list.txt')
    data = ['--camera=bayer', '--data_dir=%s' % tiny_bayer_dataset]
    result = tmp_path / 'result'
    proc = run_script('test_Sony.py', *(data + ['--test_list=%s' % test_list, '--result_dir=%s'
                                                % result, '--checkpoint_dir=%s' % checkpoint]))
    assert proc.returncode == 0, proc.stderr
    assert 'tested 2 pairs, skipped 0' in proc.stdout
    sess, packed_ph, output = restored_session(str(checkpoint / 'model.ckpt'))
    with sess:
        for pair in sid_lists.read_list(test_list, str(tiny_bayer_dataset)):
            scene, burst, _ = sid_lists.parse_name(pair.short)
            if burst:
                continue
            ratio = sid_lists.exposure_ratio(pair.short, pair.long)
            stem = str(result / 'final' / ('%05d_00_%d_' % (scene, int(round(ratio)))))
            mosaic = raw_io.read_mosaic(pair.short)
            (dy, dx) = mosaic.phase
            assert (dy, dx) == (0, 1)
            packed = camera.packed_input(mosaic, camera.BAYER)[dy:dy + 48, dx:dx + 67]
            np.testing.assert_array_equal(camera.packed_raw(pair.short, camera.BAYER), packed)
            out, = inference.run_network(sess, packed_ph, output, raw_io.amplify(packed, ratio))
            assert out.shape == (96, 134, 3)
            assert np.abs(read_png(stem + 'out.png') - out).max() <= 1
            gt = inference.postprocessed_to_uint8(raw_io.develop(pair.long, 'bayer_any'))
            np.testing.assert_array_equal(read_png(stem + 'gt.png'), gt)
            assert read_png(stem + 'scale.png').shape == gt.shape
    proc = run_script('eval.py', '--camera=bayer', '--result_dir=%s' % result)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r'^average psnr: [\d.]+$', proc.stdout, re.M)
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % checkpoint,
                                                '--result_dir=%s' % (tmp_path / 'none')]))
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        'error: --test_list is empty (--camera=bayer has no default lists): name your list file '
        '("short long ISO F" per line)']
    assert not (tmp_path / 'none').exists()
