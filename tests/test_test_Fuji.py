"""test_Fuji.py: test_Sony.py with the Fuji profile. Outputs at the cropped full size (the X-Trans
raw cropped to multiples of 6) with the authors' packing, the ground truth and baseline cropped
alike, tiles give the untiled output, finished pairs are skipped, eval.py scores them."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import bench_inference
import camera
import inference
import network
import raw_io
import sid_lists
from conftest import run_script

CROPPED = (510, 516)  # the tiny 512 x 520 X-Trans raws down to multiples of 6


def read_png(path):
    with Image.open(str(path)) as im:
        assert im.mode == 'RGB'
        return np.asarray(im).astype(np.int16)


@pytest.fixture(scope='module')
def tested(tiny_fuji_dataset, tmp_path_factory):
    """A Fuji checkpoint with weights that matter, and test_Fuji.py's results, untiled."""
    work = tmp_path_factory.mktemp('fuji_test')
    bench_inference.make_checkpoint(str(work / 'ckpt' / 'model.ckpt'), seed=3,
                                    profile=camera.FUJI)
    args = ['--data_dir=%s' % tiny_fuji_dataset,
            '--test_list=%s' % (tiny_fuji_dataset / 'Fuji_test_list.txt'),
            '--checkpoint_dir=%s' % (work / 'ckpt'), '--device=cpu']
    proc = run_script('test_Fuji.py', '--result_dir=%s' % (work / 'result'), *args)
    assert proc.returncode == 0, proc.stderr
    return work, args, proc


def test_outputs_are_the_cropped_full_size_with_the_authors_packing(tiny_fuji_dataset, tested):
    work, _, proc = tested
    assert 'Fuji checkpoint' in proc.stdout and 'tested 1 pairs, skipped 0' in proc.stdout
    pair = sid_lists.read_list(str(tiny_fuji_dataset / 'Fuji_test_list.txt'),
                               str(tiny_fuji_dataset))[0]
    ratio = sid_lists.exposure_ratio(pair.short, pair.long)
    stem = str(work / 'result' / 'final' / ('10001_00_%d_' % int(round(ratio))))
    gt = read_png(stem + 'gt.png')
    assert gt.shape == read_png(stem + 'scale.png').shape == CROPPED + (3,)
    developed = raw_io.postprocess(pair.long, 'xtrans')[:CROPPED[0], :CROPPED[1]]
    np.testing.assert_array_equal(gt, inference.to_uint(developed / np.float32(65535)))
    graph = tf.Graph()
    with graph.as_default():
        packed_ph, output = inference.build_network(camera.FUJI)
        with tf.Session(graph=graph) as sess:
            tf.train.Saver(network.model_variables()).restore(sess, str(work / 'ckpt/model.ckpt'))
            packed = raw_io.amplify(camera.packed_raw(pair.short, camera.FUJI), ratio)
            out, = inference.run_network(sess, packed_ph, output, packed, block=3)
    assert out.shape == CROPPED + (3,) and out.std() > 10  # a real image, 3x the packed size
    assert np.abs(read_png(stem + 'out.png') - out).max() <= 1


def test_tiles_give_the_untiled_output_and_done_pairs_are_skipped(tested):
    work, args, _ = tested
    proc = run_script('test_Fuji.py', '--result_dir=%s' % (work / 'result'), *args)
    assert proc.returncode == 0 and 'tested 0 pairs, skipped 1' in proc.stdout, proc.stderr
    tiled = work / 'tiled'
    proc = run_script('test_Fuji.py', '--result_dir=%s' % tiled, '--tile=64', *args)
    assert proc.returncode == 0 and 'tiles of 64+96 packed px' in proc.stdout, proc.stderr
    for path in sorted((work / 'result' / 'final').glob('*.png')):
        assert np.abs(read_png(path) - read_png(tiled / 'final' / path.name)).max() <= 1


def test_eval_scores_fuji_results(tested):
    work, _, _ = tested
    proc = run_script('eval.py', '--camera=fuji', '--result_dir=%s' % (work / 'result'),
                      '--exclude', '--jobs=1')
    assert proc.returncode == 0, proc.stderr
    assert '| x300 | 1 |' in proc.stdout and 'no scene excluded' in proc.stdout
    assert float(proc.stdout.split('average psnr: ')[1].split()[0]) > 5


def test_a_sony_checkpoint_folder_is_refused_without_suggesting_its_other_sony_checkpoint(
        tiny_fuji_dataset, tmp_path):
    """Issue 16, case 12: the error suggested "the previous checkpoint", also a Sony one."""
    folder = tmp_path / 'sony'
    for step in (1, 2):
        bench_inference.make_checkpoint(str(folder / ('model.ckpt-%d' % step)), seed=step)
    proc = run_script('test_Fuji.py', '--data_dir=%s' % tiny_fuji_dataset,
                      '--test_list=%s' % (tiny_fuji_dataset / 'Fuji_test_list.txt'),
                      '--checkpoint_dir=%s' % folder, '--result_dir=%s' % (tmp_path / 'result'),
                      '--device=cpu')
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        'error: %s: variable g_conv1_1/weights has shape [3, 3, 4, 32] in the checkpoint, the '
        'network needs [3, 3, 9, 32]: a model for Sony/bayer raws (4 packed channels), not for '
        'Fuji (9)' % (folder / 'model.ckpt-2'))
