"""scripts/export_model.py: the frozen graph and the SavedModel reproduce the checkpoint bit for
bit, ONNX (onnxruntime) within 1e-4; a fixed-shape graph for Ascend's ATC; enhance runs from a
graph."""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import bench_inference
import camera
import export_model
import inference
from conftest import run_script
from test_camera import write_raw


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp('export')
    checkpoint = root / 'ckpt'
    bench_inference.make_checkpoint(str(checkpoint / 'model.ckpt'), seed=3)
    proc = run_script('scripts/export_model.py', '--checkpoint_dir=%s' % checkpoint,
                      '--out_dir=%s' % (root / 'out'), '--name=net')
    assert proc.returncode == 0, proc.stderr
    return str(checkpoint), root / 'out', proc.stdout


def some_input(height, width, seed=5, channels=4):
    """Not the script's own check input: an independent comparison."""
    rng = np.random.RandomState(seed)
    return np.minimum(rng.gamma(0.5, 0.3, (1, height, width, channels)), 1).astype(np.float32)


def test_every_format_reproduces_the_checkpoint(exported):
    checkpoint, out, stdout = exported
    assert sorted(p.name for p in out.iterdir()) == ['net.onnx', 'net.pb', 'net_savedmodel']
    for line in ('net.pb: max |difference| to the checkpoint 0 (must be bit for bit)',
                 'net_savedmodel: max |difference| to the checkpoint 0 (must be bit for bit)'):
        assert line in stdout
    packed = some_input(40, 56)
    model = inference.session_from_checkpoint(checkpoint)
    with model.session:
        reference = model.session.run(model.output, {model.input: packed})
    assert reference.shape == (1, 80, 112, 3) and reference.std() > 0.05

    graph = inference.session_from_graph(str(out / 'net.pb'))
    assert graph.input.shape.as_list() == [1, None, None, 4]
    with graph.session:
        frozen = graph.session.run(graph.output, {graph.input: packed})
    assert frozen.tobytes() == reference.tobytes()

    saved = export_model.run_savedmodel(str(out / 'net_savedmodel'), packed)
    assert saved.tobytes() == reference.tobytes()

    onnx = export_model.run_onnx(str(out / 'net.onnx'), packed)
    assert onnx.shape == reference.shape
    assert np.abs(onnx - reference).max() <= export_model.ONNX_TOLERANCE


def test_the_savedmodel_has_a_serving_signature(exported):
    _, out, _ = exported
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.SERVING],
                                          str(out / 'net_savedmodel'))
        signature = meta.signature_def[export_model.SERVING_SIGNATURE]
    assert signature.method_name == 'tensorflow/serving/predict'
    assert list(signature.inputs) == ['input'] and list(signature.outputs) == ['output']


def test_a_fixed_shape_graph_for_atc_and_enhance_from_it(tmp_path, exported):
    checkpoint, _, _ = exported
    proc = run_script('scripts/export_model.py', '--checkpoint_dir=%s' % checkpoint,
                      '--out_dir=%s' % tmp_path, '--height=24', '--width=40', '--formats=pb')
    assert proc.returncode == 0, proc.stderr
    assert 'input input [1, 24, 40, 4]' in proc.stdout
    graph = inference.session_from_graph(str(tmp_path / 'sid.pb'))
    assert graph.input.shape.as_list() == [1, 24, 40, 4]
    assert graph.output.shape.as_list()[1:] == [48, 80, 3]
    graph.session.close()
    fits = write_raw(tmp_path / 'fits.dng', np.full((48, 80), 700))
    other = write_raw(tmp_path / 'other.dng', np.full((48, 82), 700))
    proc = run_script('scripts/enhance.py', '--model=%s' % (tmp_path / 'sid.pb'), '--ratio=50',
                      fits)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'fits_sid.png').is_file()
    proc = run_script('scripts/enhance.py', '--model=%s' % (tmp_path / 'sid.pb'), '--ratio=50',
                      other)
    # (the last line: TF 1.15 logs a failed CUDA probe before it on machines without a GPU)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        'error: %s: packs to 24x41, the graph %s takes only 24x40; export one with any size for '
        'this camera' % (other, tmp_path / 'sid.pb'))


def test_a_fuji_model_exports_9_channels_in_and_3x_out(tmp_path):
    checkpoint = tmp_path / 'fuji'
    bench_inference.make_checkpoint(str(checkpoint / 'model.ckpt'), seed=6, profile=camera.FUJI)
    proc = run_script('scripts/export_model.py', '--camera=fuji', '--checkpoint_dir=%s'
                      % checkpoint, '--out_dir=%s' % tmp_path, '--formats=pb')
    assert proc.returncode == 0, proc.stderr
    assert 'input input [1, H, W, 9] -> output output [1, 3H, 3W, 3]' in proc.stdout
    assert 'sid.pb: max |difference| to the checkpoint 0 (must be bit for bit)' in proc.stdout
    packed = some_input(40, 56, channels=9)
    model = inference.session_from_checkpoint(str(checkpoint), profile=camera.FUJI)
    with model.session:
        reference = model.session.run(model.output, {model.input: packed})
    graph = inference.session_from_graph(str(tmp_path / 'sid.pb'))
    assert graph.input.shape.as_list() == [1, None, None, 9]
    with graph.session:
        frozen = graph.session.run(graph.output, {graph.input: packed})
    assert frozen.shape == (1, 120, 168, 3) and frozen.tobytes() == reference.tobytes()


@pytest.mark.parametrize('args,message', [
    (['model.ckpt'], 'error: unexpected argument model.ckpt: export_model.py takes flags only'),
    (['--height=24'], 'error: give both --height and --width (a fixed input), or neither'),
])
def test_bad_command_lines_are_one_line_errors(tmp_path, args, message):
    proc = run_script('scripts/export_model.py', '--out_dir=%s' % tmp_path, *args)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_help_without_tensorflow(tmp_path):
    """--help answers without importing TensorFlow (which here cannot be imported at all)."""
    (tmp_path / 'tensorflow').mkdir()
    (tmp_path / 'tensorflow' / '__init__.py').write_text('raise ImportError("TensorFlow loaded")\n')
    root = os.path.dirname(os.path.dirname(os.path.abspath(inference.__file__)))
    proc = run_script('scripts/export_model.py', '--help',
                      env={'PYTHONPATH': os.pathsep.join([str(tmp_path), root])})
    assert '--height' in proc.stdout and 'atc --model' in proc.stdout
