"""test_Sony.py: checkpoints load or fail loudly, outputs are the official names and contents,
finished pairs are skipped, stale results are recomputed (tiling: tests/test_inference.py)."""
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import bench_inference
import inference
import network
import sid_io
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


def restored_session(prefix):
    graph = tf.Graph()
    with graph.as_default():
        packed, output = inference.build_network()
        sess = tf.Session(graph=graph)
        tf.train.Saver(network.model_variables()).restore(sess, prefix)
    return sess, packed, output


def test_checkpoint_lookup_and_validation(tmp_path, checkpoint):
    prefix = str(checkpoint / 'model.ckpt')
    assert test_Sony.find_checkpoint(str(checkpoint)) == prefix
    assert test_Sony.find_checkpoint(prefix) == prefix
    with pytest.raises(sid_io.SidError, match='no checkpoint found.*refusing'):
        test_Sony.find_checkpoint(str(tmp_path))
    # A 'checkpoint' state file from another machine (as in the released model): use what is here.
    moved = tmp_path / 'moved'
    moved.mkdir()
    for name in os.listdir(str(checkpoint)):
        if name.startswith('model.ckpt'):
            (moved / name).write_bytes((checkpoint / name).read_bytes())
    (moved / 'checkpoint').write_text('model_checkpoint_path: "/home/chen/SID/checkpoint/Sony/model.ckpt"\n')
    assert test_Sony.find_checkpoint(str(moved)) == str(moved / 'model.ckpt')

    with tf.Graph().as_default():
        network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
        variables = network.model_variables()
        test_Sony.check_checkpoint(prefix, variables)  # the released naming passes
        shapes = dict((v.op.name, v.shape.as_list()) for v in variables)

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
        # Extra variables (a training checkpoint's Adam slots, step counter) are fine.
        test_Sony.check_checkpoint(save('train', shapes, ['beta1_power', 'global_step']), variables)
        partial = dict((n, s) for n, s in shapes.items() if not n.startswith('Variable'))
        with pytest.raises(sid_io.SidError, match=r'lacks 4 of the 42 U-Net variables \(first: Variable'):
            test_Sony.check_checkpoint(save('partial', partial), variables)
        wrong = dict(shapes, **{'g_conv10/weights': [1, 1, 32, 3]})
        with pytest.raises(sid_io.SidError, match=r'g_conv10/weights has shape \[1, 1, 32, 3\]'):
            test_Sony.check_checkpoint(save('wrong', wrong), variables)
        (tmp_path / 'junk.index').write_bytes(b'not a checkpoint')
        with pytest.raises(sid_io.SidError, match='unreadable checkpoint'):
            test_Sony.check_checkpoint(str(tmp_path / 'junk'), variables)


def test_select_pairs_first_burst_and_name_clashes(tiny_dataset):
    list_path = str(tiny_dataset / 'Sony_test_list.txt')
    pairs = sid_io.read_list(list_path, str(tiny_dataset))
    first = test_Sony.select_pairs(pairs, False, list_path)
    assert [burst for _, _, burst, _ in first] == [0] * (len(pairs) // 2)
    assert len(test_Sony.select_pairs(pairs, True, list_path)) == len(pairs)
    with pytest.raises(sid_io.SidError, match=r'Sony_test_list.txt:\d+: gives the same result name'):
        test_Sony.select_pairs(pairs + pairs[:1], True, list_path)


def test_end_to_end_outputs_skip_and_refusals(tmp_path, tiny_dataset, checkpoint):
    data = ['--data_dir=%s' % tiny_dataset, '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt')]
    result = tmp_path / 'result'
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % checkpoint,
                                                '--result_dir=%s' % result]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('device=cpu precision=fp32')
    assert 'tested 2 pairs, skipped 0' in proc.stdout

    pairs = sid_io.read_list(str(tiny_dataset / 'Sony_test_list.txt'), str(tiny_dataset))
    final = result / 'final'
    expected_names = set()
    sess, packed_ph, output = restored_session(str(checkpoint / 'model.ckpt'))
    with sess:
        for pair in pairs:
            scene, burst, _ = sid_io.parse_name(pair.short)
            if burst:
                continue
            ratio = sid_io.exposure_ratio(pair.short, pair.long)
            stem = str(final / ('%05d_00_%d_' % (scene, int(round(ratio)))))
            expected_names.update(os.path.basename(stem + k + '.png') for k in test_Sony.KINDS)
            gt = inference.to_uint(sid_io.read_ground_truth(pair.long))
            assert np.array_equal(read_png(stem + 'gt.png'), gt)
            packed = sid_io.amplify(sid_io.pack_raw(pair.short), ratio)
            out, = inference.run_network(sess, packed_ph, output, packed)
            assert np.abs(read_png(stem + 'out.png') - out).max() <= 1  # the restored weights
            scale = read_png(stem + 'scale.png')
            assert scale.shape == gt.shape == (96, 136, 3)
            # The official baseline: postprocessed short exposure times mean(gt) / its own mean.
            short = sid_io.postprocess(pair.short).astype(np.float64) / 65535
            gt_float = sid_io.read_ground_truth(pair.long).astype(np.float64)
            reference = np.clip(short * gt_float.mean() / short.mean() * 255, 0, 255)
            assert np.abs(scale - np.floor(reference + 0.5)).max() <= 1
    assert set(os.listdir(str(final))) == expected_names  # and no temporary files
    stamp = test_Sony.output_stamp(str(final / sorted(expected_names)[1]))
    assert sorted(expected_names)[1].endswith('_out.png') and stamp.startswith('sha256:')
    assert stamp.endswith(str(checkpoint / 'model.ckpt'))
    mtimes = dict((n, os.path.getmtime(str(final / n))) for n in expected_names)

    # eval.py scores them with default protocol and names the checkpoint.
    proc = run_script('eval.py', '--result_dir=%s' % result)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r'^average psnr: [\d.]+$', proc.stdout, re.M)
    assert 'checkpoint %s' % stamp in proc.stdout
    assert os.path.isfile(str(final / 'eval_skimage.csv'))

    # All pairs, tiled: the _00 pairs are skipped (untouched), the _01 pairs computed.
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % checkpoint, '--all_pairs',
                                                '--result_dir=%s' % result, '--tile=32',
                                                '--tile_overlap=16']))
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
    assert '2 outputs were made with another checkpoint: recomputing them' in proc.stdout
    assert 'tested 2 pairs, skipped 0' in proc.stdout
    for name, before in mtimes.items():
        changed = os.path.getmtime(str(final / name)) != before
        assert changed == name.endswith('_out.png')  # gt and scale do not depend on the weights
    assert test_Sony.output_stamp(str(final / sorted(expected_names)[1])).endswith(
        str(other / 'model.ckpt'))

    # No checkpoint: one-line error, exit 1, nothing written.
    empty = tmp_path / 'empty'
    empty.mkdir()
    proc = run_script('test_Sony.py', *(data + ['--checkpoint_dir=%s' % empty,
                                                '--result_dir=%s' % (tmp_path / 'none')]))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: %s: no checkpoint found (expected model.ckpt.index); train with train_Sony.py or '
        'download the authors\' model - refusing to test random weights' % empty]
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

