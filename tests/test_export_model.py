"""scripts/export_model.py: the frozen graph and the SavedModel reproduce the checkpoint bit for
bit, ONNX (onnxruntime) within 1e-4; a fixed-shape graph for Ascend's ATC; enhance runs from a
graph. The export folder is one unit: Ctrl-C, kill -9 at random moments, a full disk, a file or
an unwritable place in the way leave the complete old export or the complete new one (issue 16)."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import bench_inference
import camera
import export_model
import inference
import safe_files
from conftest import ROOT, crash_trials, ctrl_c_enabled, run_script
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
    assert sorted(p.name for p in out.iterdir()) == ['net.onnx', 'net.pb', 'net_manifest.json',
                                                     'net_savedmodel']
    assert sorted(intact_export(out, 'net')['formats']) == ['onnx', 'pb', 'savedmodel']
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
                      % checkpoint, '--out_dir=%s' % (tmp_path / 'out'), '--formats=pb')
    assert proc.returncode == 0, proc.stderr
    assert 'input input [1, H, W, 9] -> output output [1, 3H, 3W, 3]' in proc.stdout
    assert 'sid.pb: max |difference| to the checkpoint 0 (must be bit for bit)' in proc.stdout
    packed = some_input(40, 56, channels=9)
    model = inference.session_from_checkpoint(str(checkpoint), profile=camera.FUJI)
    with model.session:
        reference = model.session.run(model.output, {model.input: packed})
    assert intact_export(tmp_path / 'out')['camera'] == 'Fuji'
    graph = inference.session_from_graph(str(tmp_path / 'out' / 'sid.pb'))
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


# ---------------------------------------------------------------- one unit (issue 16)

def intact_export(folder, name='sid'):
    """The manifest of the export in `folder`, once every file it lists has its checksum, and the
    folder holds nothing else."""
    manifest = json.loads((folder / (export_model.MANIFEST % name)).read_text())
    found = sorted(os.path.relpath(os.path.join(top, n), str(folder)).replace(os.sep, '/')
                   for top, _, names in os.walk(str(folder)) for n in names)
    assert found == sorted(list(manifest['files']) + [export_model.MANIFEST % name])
    for path, digest in manifest['files'].items():
        assert safe_files.file_digest(str(folder / path)) == digest, path
    entries = export_model.export_names(name)
    assert sorted(os.listdir(str(folder))) == sorted(
        [entries[fmt] for fmt in manifest['formats']] + [export_model.MANIFEST % name])
    return manifest


def leftovers(folder):
    return sorted(n for n in os.listdir(str(folder.parent)) if n.startswith('.tmp-'))


SMALL = ('--height=16', '--width=16')  # a fixed 16 x 16 input: the quickest export there is


def export_to(checkpoint, out, *args, **kwargs):
    return run_script('scripts/export_model.py', '--checkpoint_dir=%s' % checkpoint,
                      '--out_dir=%s' % out, *(SMALL + args), **kwargs)


def popen_export(checkpoint, out, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1')
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)
    cmd = [sys.executable, os.path.join(ROOT, 'scripts', 'export_model.py'),
           '--checkpoint_dir=%s' % checkpoint, '--out_dir=%s' % out] + list(SMALL + args)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            universal_newlines=True, **kwargs)


def test_ctrl_c_during_the_onnx_step_keeps_the_previous_export_whole(tmp_path, exported):
    """Case 1: the old sid.pb and sid_savedmodel/ were gone after a Ctrl-C while tf2onnx ran."""
    checkpoint, out = exported[0], tmp_path / 'out'
    assert export_to(checkpoint, out, '--formats=pb,savedmodel').returncode == 0
    before = intact_export(out)
    proc = popen_export(checkpoint, out, preexec_fn=ctrl_c_enabled)
    for line in proc.stdout:
        if line.startswith('converting to ONNX'):
            proc.send_signal(signal.SIGINT)
            break
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == 'error: interrupted (SIGINT)'
    assert intact_export(out) == before and leftovers(out) == []


def test_a_kill_9_mid_export_leaves_the_old_export_and_the_next_run_clears_its_leftovers(
        tmp_path, exported):
    """Case 2: a new sid.pb sat beside the previous export's SavedModel and ONNX, and a .tmp-*
    folder that later exports never removed."""
    checkpoint, out = exported[0], tmp_path / 'out'
    assert export_to(checkpoint, out, '--formats=savedmodel').returncode == 0
    before = intact_export(out)
    proc = popen_export(checkpoint, out, '--formats=pb,savedmodel')
    for line in proc.stdout:
        if 'sid.pb: max |difference|' in line:  # pb written and verified, SavedModel next
            proc.kill()
            break
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert intact_export(out) == before
    left = leftovers(out)
    assert len(left) == 1 and left[0].endswith('-out')
    proc = export_to(checkpoint, out, '--formats=pb,savedmodel')
    assert proc.returncode == 0, proc.stderr
    assert 'removed 1 leftovers of an interrupted export from %s (%s)' % (
        tmp_path, left[0]) in proc.stdout
    assert sorted(intact_export(out)['formats']) == ['pb', 'savedmodel'] and leftovers(out) == []


def test_a_pb_only_export_leaves_no_stale_onnx_and_a_foreign_folder_is_refused(
        tmp_path, exported):
    """Case 13: --formats=pb into a folder holding an older sid.onnx left it beside the new pb."""
    checkpoint, out = exported[0], tmp_path / 'out'
    assert export_to(checkpoint, out, '--formats=pb,onnx').returncode == 0
    proc = export_to(checkpoint, out, '--formats=pb')
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(str(out))) == ['sid.pb', 'sid_manifest.json']
    assert list(intact_export(out)['formats']) == ['pb']
    (out / 'notes.txt').write_text('mine')  # replacing the folder would lose it: refused
    proc = export_to(checkpoint, out, '--formats=pb')
    assert 'checkpoint' not in proc.stdout  # refused before the model loads
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        'error: %s: holds notes.txt, not part of an export named sid; the export replaces the '
        'whole folder: give an empty or new --out_dir' % out)
    assert (out / 'notes.txt').read_text() == 'mine'


def test_an_unwritable_place_or_a_file_in_the_way_is_one_line_before_the_model_loads(
        tmp_path, exported):
    """Case 9: OSError and FileExistsError tracebacks. Root ignores chmod: the unwritable place
    is under a regular file."""
    checkpoint = exported[0]
    (tmp_path / 'file').write_text('x')
    for out, message in (
            (tmp_path / 'file', '%s: is a file, not a folder; give --out_dir a folder for the '
             'export' % (tmp_path / 'file')),
            (tmp_path / 'file' / 'sub', '%s: cannot write the new export (%s is a file, not a '
             'folder)' % (tmp_path / 'file', tmp_path / 'file'))):
        proc = export_to(checkpoint, out)
        assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == 'error: ' + message
        assert 'checkpoint' not in proc.stdout  # refused before the model loads
    assert (tmp_path / 'file').read_text() == 'x'


FULL_DISK = """
import sys
import tensorflow.compat.v1 as tf
import cli
import export_model
def full(model, path):
    raise tf.errors.ResourceExhaustedError(None, None, 'x\\n' * 100 + path + '; No space left on '
                                           'device')
export_model.write_savedmodel = full
sys.argv = ['export_model.py'] + sys.argv[1:]
cli.run(export_model.main, export_model.define_flags)
"""


def test_a_full_disk_is_one_line_and_keeps_the_previous_export(tmp_path, exported):
    """Case 9: a 103-line ResourceExhaustedError (TensorFlow's code for ENOSPC)."""
    checkpoint, out = exported[0], tmp_path / 'out'
    assert export_to(checkpoint, out, '--formats=pb').returncode == 0
    before = intact_export(out)
    proc = subprocess.run([sys.executable, '-c', FULL_DISK, '--checkpoint_dir=%s' % checkpoint,
                           '--out_dir=%s' % out] + list(SMALL), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              [ROOT, os.path.join(ROOT, 'scripts')])))
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        'error: %s: cannot export (no space left on %s); the previous export is unchanged'
        % (out, tmp_path))
    assert intact_export(out) == before and leftovers(out) == []


CRASH_FORMATS = ('pb', 'pb,savedmodel', 'savedmodel,onnx', 'pb,savedmodel,onnx')
LOADED = 'Sony checkpoint'  # the first line: the model is loaded, the export is being built


def seconds_after(proc, marker, kill_after=None):
    """Read proc's output to the line starting with `marker`, then kill it (SIGKILL) after
    `kill_after` seconds or let it end; the seconds from the marker to the end."""
    for line in proc.stdout:
        if line.startswith(marker):
            break
    start = time.time()
    if kill_after is not None:
        time.sleep(kill_after)
        proc.kill()
    proc.communicate(timeout=600)
    return time.time() - start


def test_kill_9_at_random_moments_of_exports_always_leaves_one_complete_verified_export(
        tmp_path, exported):
    """crash_trials() re-exports (20 on TF 1.15) with random formats, each killed (SIGKILL) at a
    random moment between the model's loading and the end of a whole export (timed first, on
    this machine): after each, the folder holds one complete export (every file its manifest
    lists, with its checksum, nothing else) - the previous one or the new one - and the next run
    clears what the killed one left."""
    checkpoint, out = exported[0], tmp_path / 'out'
    rng = random.Random(16)
    whole = seconds_after(popen_export(checkpoint, out, '--formats=' + CRASH_FORMATS[-1]), LOADED)
    assert sorted(intact_export(out)['formats']) == ['onnx', 'pb', 'savedmodel']
    outcomes = {'old': 0, 'new': 0}
    for trial in range(crash_trials()):
        before = intact_export(out)
        formats = rng.choice(CRASH_FORMATS)
        seconds_after(popen_export(checkpoint, out, '--formats=' + formats), LOADED,
                      rng.uniform(0.0, whole))
        after = intact_export(out)
        if after == before:
            outcomes['old'] += 1
        else:
            assert sorted(after['formats']) == sorted(formats.split(','))
            outcomes['new'] += 1
    proc = export_to(checkpoint, out, '--formats=pb,savedmodel')
    assert proc.returncode == 0, proc.stderr
    assert sorted(intact_export(out)['formats']) == ['pb', 'savedmodel'] and leftovers(out) == []
    print('export kill -9 trials within %.1f s: %d left the previous export, %d the new one'
          % (whole, outcomes['old'], outcomes['new']))
