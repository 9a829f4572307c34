"""scripts/enhance.py: one scene in any CFA phase, bit depth or orientation gives the same image,
tiles change nothing, a frozen graph gives what the checkpoint gives, the ratio rule, and every
input it cannot handle is refused in one line before TensorFlow loads. No output replaces an
input or another raw's output, and a rerun after kill -9 finishes only the missing files
(issue 16)."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import bench_inference
import camera
import enhance
import inference
import raw_io
import safe_files
import sid_lists
from conftest import ROOT, crash_trials, run_script
from test_camera import PHASES, mirror_consistent_rggb, phase_cut, write_raw
from test_raw_io import unsupported_files

SCENE = (66, 98)  # mosaic rows, columns: odd packed sizes (33 x 49) through the U-Net


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp('ckpt')
    bench_inference.make_checkpoint(str(folder / 'model.ckpt'), seed=1)
    return str(folder)


def read_png(path):
    with Image.open(str(path)) as im:
        assert im.mode == 'RGB'
        return np.asarray(im)


def printed_ratios(stdout):
    return dict(re.findall(r'^(.*): ratio ([\d.]+)', stdout, re.M))


@pytest.fixture(scope='module')
def enhanced(tmp_path_factory, checkpoint):
    """One run over the same dark scene in all four CFA phases and three more orientations."""
    folder = tmp_path_factory.mktemp('enhance')
    bayer = mirror_consistent_rggb(*SCENE) * 20 + 512  # dark: at most 1280 of 16383
    raws = {}
    for phase, cfa in PHASES:
        raws[cfa] = write_raw(folder / (cfa + '.dng'), phase_cut(bayer, phase), cfa=cfa)
    for orientation in (3, 6, 8):
        raws['BGGR-%d' % orientation] = write_raw(folder / ('BGGR-%d.dng' % orientation),
                                                  phase_cut(bayer, (1, 1)), cfa='BGGR',
                                                  orientation=orientation)
    out = folder / 'out'
    proc = run_script('scripts/enhance.py', '--checkpoint_dir=%s' % checkpoint, '--auto_ratio',
                      '--tiff', '--out_dir=%s' % out, *[raws[k] for k in sorted(raws)])
    assert proc.returncode == 0, proc.stderr
    images = dict((k, read_png(out / (k + '_sid.png'))) for k in raws)
    return raws, images, out, proc.stdout


def test_the_four_cfa_phases_give_the_same_image(enhanced):
    raws, images, _, stdout = enhanced
    reference = images['RGGB']
    assert reference.shape == SCENE + (3,) and reference.std() > 10
    for phase, cfa in PHASES:
        dy, dx = phase
        height, width = SCENE[0] - 2 * dy, SCENE[1] - 2 * dx
        assert images[cfa].shape == (height, width, 3)  # exactly the raw's own pixels
        np.testing.assert_array_equal(images[cfa], reference[dy:dy + height, dx:dx + width])
    # The same packed input everywhere, so the same automatic ratio: the rule's own value.
    packed = camera.packed_input(raw_io.read_mosaic(raws['RGGB']), camera.BAYER)
    expected = '%.1f' % enhance.auto_ratio(packed)
    assert set(printed_ratios(stdout).values()) == {expected}
    assert 'ratio %s (auto)' % expected in stdout and 1 < float(expected) < 300


def test_orientation_from_the_file_turns_the_output(enhanced):
    _, images, _, _ = enhanced
    upright = images['BGGR']
    np.testing.assert_array_equal(images['BGGR-3'], upright[::-1, ::-1])      # 180 degrees
    np.testing.assert_array_equal(images['BGGR-6'], np.rot90(upright, -1))    # 90 clockwise
    np.testing.assert_array_equal(images['BGGR-8'], np.rot90(upright, 1))     # 90 counter-cw


def test_16_bit_tiff_is_the_same_picture(enhanced):
    import tifffile
    _, images, out, _ = enhanced
    tif = tifffile.imread(str(out / 'GBRG_sid.tif'))
    assert tif.dtype == np.uint16 and tif.shape == images['GBRG'].shape
    assert np.abs(tif / 257.0 - images['GBRG']).max() <= 1
    assert len(np.unique(tif)) > len(np.unique(images['GBRG']))  # more than 8 bits of it
    assert sorted(n for n in os.listdir(str(out)) if n.startswith('.')) == []  # no temporaries


def test_tiles_and_a_frozen_graph_give_the_same_image(tmp_path, checkpoint):
    import export_model
    bayer = mirror_consistent_rggb(192, 256, seed=2) * 2 + 600  # a 12-bit camera, dark
    raw = write_raw(tmp_path / 'scene.dng', bayer, black=(600, 601, 602, 603), white=4095)
    model = inference.session_from_checkpoint(checkpoint)
    with model.session:
        graph = str(tmp_path / 'sid.pb')
        with open(graph, 'wb') as f:
            f.write(export_model.freeze(model).SerializeToString())
    runs = {}
    for name, extra in (('untiled', ['--checkpoint_dir=%s' % checkpoint, '--tile=0']),
                        ('tiled', ['--checkpoint_dir=%s' % checkpoint, '--tile=32']),
                        ('graph', ['--model=%s' % graph, '--tile=0'])):
        out = tmp_path / name
        proc = run_script('scripts/enhance.py', '--ratio=40', '--out_dir=%s' % out, raw, *extra)
        assert proc.returncode == 0, proc.stderr
        assert printed_ratios(proc.stdout) == {raw: '40.0'}
        runs[name] = read_png(out / 'scene_sid.png').astype(np.int16)
    assert runs['untiled'].shape == (192, 256, 3) and runs['untiled'].std() > 10
    assert np.abs(runs['tiled'] - runs['untiled']).max() <= 1
    np.testing.assert_array_equal(runs['graph'], runs['untiled'])


def test_auto_ratio_brings_the_clipped_mean_to_the_target():
    flat = np.full((40, 40, 4), 0.001, np.float32)
    assert enhance.auto_ratio(flat) == pytest.approx(enhance.AUTO_RATIO_TARGET / 0.001, rel=1e-4)
    # A lamp covering 10% of the frame saturates: it counts as 1, the rest is brightened to match.
    lamp = flat.copy()
    lamp[:, :4] = 1.0
    expected = (enhance.AUTO_RATIO_TARGET - 0.1) / (0.9 * 0.001)
    assert enhance.auto_ratio(lamp) == pytest.approx(expected, rel=1e-4)
    assert enhance.auto_ratio(np.zeros_like(flat)) == sid_lists.MAX_RATIO  # black: the cap
    assert enhance.auto_ratio(flat + 0.5) == enhance.AUTO_RATIO_MIN     # bright: left alone


def test_unsupported_inputs_fail_in_one_line_before_tensorflow(tmp_path, checkpoint, no_tensorflow):
    for kind, (path, reason) in sorted(unsupported_files(tmp_path).items()):
        proc = run_script('scripts/enhance.py', '--checkpoint_dir=%s' % checkpoint,
                          '--auto_ratio', '--out_dir=%s' % (tmp_path / 'out'), path,
                          env=no_tensorflow)
        assert proc.returncode == 1, kind
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: %s: %s' % (path, reason)), kind
        assert proc.stdout == ''
    assert not (tmp_path / 'out').exists()


def test_bad_command_lines_fail_in_one_line_before_tensorflow(tmp_path, checkpoint, no_tensorflow):
    raw = write_raw(tmp_path / 'a.dng', np.full((32, 48), 600))
    (tmp_path / 'b').mkdir()
    twin = write_raw(tmp_path / 'b' / 'a.dng', np.full((32, 48), 600))
    cases = [
        ([], 'error: no raw files given'),
        ([raw], 'error: give either --ratio=R or --auto_ratio'),
        (['--ratio=10', '--auto_ratio', raw], 'error: give either --ratio=R or --auto_ratio'),
        (['--ratio=10', raw, twin], 'error: %s: writes %s like %s' % (
            twin, tmp_path / 'out' / 'a_sid.png', raw)),
        (['--ratio=10', str(tmp_path / 'none.dng')], 'error: %s: raw file not found'
         % (tmp_path / 'none.dng')),
        (['--ratio=10', str(tmp_path / 'b')], 'error: %s: is a folder, not a raw file'
         % (tmp_path / 'b')),  # issue 16, case 12: it said "raw file not found"
        (['--ratio=10', '--model=%s' % (tmp_path / 'none.pb'), raw],
         'error: %s: frozen graph not found' % (tmp_path / 'none.pb')),
    ]
    for args, message in cases:
        proc = run_script('scripts/enhance.py', '--out_dir=%s' % (tmp_path / 'out'),
                          '--checkpoint_dir=%s' % checkpoint, *args, env=no_tensorflow)
        assert proc.returncode == 1 and proc.stderr.strip().splitlines()[0].startswith(message), (
            args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_script('scripts/enhance.py', '--ratio=10', '--checkpoint_dir=%s' % (tmp_path / 'x'),
                      raw, env=no_tensorflow)
    assert proc.stderr.strip() == ('error: %s: no checkpoint folder or prefix here; give '
                                   '--checkpoint_dir or --model=graph.pb' % (tmp_path / 'x'))
    assert not (tmp_path / 'out').exists()
    proc = run_script('scripts/enhance.py', '--help', env=no_tensorflow)
    assert '--auto_ratio' in proc.stdout and 'middle grey' in proc.stdout


def test_x_trans_raws_take_a_fuji_model_and_come_out_whole(tmp_path, tiny_fuji_dataset,
                                                           checkpoint):
    fuji = tmp_path / 'fuji'
    bench_inference.make_checkpoint(str(fuji / 'model.ckpt'), seed=4, profile=camera.FUJI)
    raw = str(tiny_fuji_dataset / 'Fuji' / 'short' / '10001_00_0.033s.dng')
    proc = run_script('scripts/enhance.py', '--ratio=100', '--out_dir=%s' % (tmp_path / 'out'),
                      '--checkpoint_dir=%s' % fuji, raw)  # --camera=auto: X-Trans -> Fuji
    assert proc.returncode == 0, proc.stderr
    assert '(Fuji)' in proc.stdout
    image = read_png(tmp_path / 'out' / '10001_00_0.033s_sid.png')
    assert image.shape == (512, 520, 3)  # every pixel of the raw, not test_Fuji.py's 510 x 516
    model = inference.session_from_checkpoint(str(fuji), profile=camera.FUJI)
    with model.session as sess:
        packed = raw_io.amplify(camera.packed_input(raw_io.read_mosaic(raw), camera.FUJI), 100)
        out, = inference.run_network(sess, model.input, model.output, packed, block=3)
    assert out.shape == (516, 522, 3) and image.std() > 10
    np.testing.assert_array_equal(image, out[:512, :520])
    proc = run_script('scripts/enhance.py', '--ratio=100', '--out_dir=%s' % (tmp_path / 'out'),
                      '--checkpoint_dir=%s' % checkpoint, raw)  # a Sony model
    # (the last line: TF 1.15 logs a failed CUDA probe before it on machines without a GPU)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        'error: %s: variable g_conv1_1/weights has shape [3, 3, 4, 32] in the checkpoint, the '
        'network needs [3, 3, 9, 32]: a model for Sony/bayer raws (4 packed channels), not for '
        'Fuji (9)' % os.path.join(checkpoint, 'model.ckpt'))


def test_a_raw_the_camera_cannot_take_fails_in_one_line_before_tensorflow(
        tmp_path, tiny_fuji_dataset, checkpoint, no_tensorflow):
    bayer = write_raw(tmp_path / 'a.dng', np.full((32, 48), 600))
    xtrans = str(tiny_fuji_dataset / 'Fuji' / 'short' / '10001_00_0.033s.dng')
    cases = [(['--camera=fuji', bayer], '%s: Bayer sensor: needs a Sony/bayer model, not '
                                        '--camera=Fuji' % bayer),
             (['--camera=Sony', xtrans], '%s: X-Trans sensor: needs a Fuji model, not '
                                         '--camera=Sony' % xtrans),
             ([xtrans, bayer], '%s: Bayer sensor, %s is X-Trans: one model takes one kind, '
                               'enhance them in separate runs' % (bayer, xtrans))]
    for args, message in cases:
        proc = run_script('scripts/enhance.py', '--ratio=10', '--checkpoint_dir=%s' % checkpoint,
                          '--out_dir=%s' % (tmp_path / 'out'), *args, env=no_tensorflow)
        assert (proc.returncode, proc.stderr) == (1, 'error: %s\n' % message), args


# ---------------------------------------------------------------- nothing lost (issue 16)

def enhance_run(*args, **kwargs):
    return run_script('scripts/enhance.py', *args, **kwargs)


def last_error(proc):
    """The one error line (TF 1.15 may log a failed CUDA probe before it)."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    return errors[0]


def test_an_output_that_is_an_input_is_refused_before_tensorflow(tmp_path, checkpoint,
                                                                 no_tensorflow):
    """Case 3: y.dng's TIFF output overwrote the input raw y_sid.tif, then the run failed."""
    first = write_raw(tmp_path / 'y.dng', np.full((32, 48), 600))
    second = write_raw(tmp_path / 'y_sid.tif', np.full((32, 48), 700))  # a raw, named so
    data = open(second, 'rb').read()
    proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=10', '--tiff', first, second,
                       env=no_tensorflow)
    assert (proc.returncode, proc.stderr) == (1, 'error: %s: is the input %s, and the output of %s '
                                                 'would replace it; give --out_dir\n'
                                              % (second, second, first))
    os.link(second, str(tmp_path / 'linked.dng'))  # the same file under another name
    (tmp_path / 'out').mkdir()
    os.link(second, str(tmp_path / 'out' / 'linked_sid.png'))
    proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=10', '--out_dir=%s'
                       % (tmp_path / 'out'), str(tmp_path / 'linked.dng'), env=no_tensorflow)
    assert proc.returncode == 1 and 'is the input %s' % (tmp_path / 'linked.dng') in proc.stderr
    assert open(second, 'rb').read() == data
    assert sorted(os.listdir(str(tmp_path))) == ['linked.dng', 'out', 'y.dng', 'y_sid.tif']


@pytest.mark.parametrize('ratio', ['inf', 'nan', '-3', '0', '1e9'])
def test_a_ratio_that_is_not_finite_positive_and_plausible_is_refused(tmp_path, checkpoint,
                                                                      no_tensorflow, ratio):
    """Case 4: --ratio=inf gave exit 0 and a black PNG; 1e9 was accepted silently."""
    raw = write_raw(tmp_path / 'a.dng', np.full((32, 48), 600))
    proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=%s' % ratio, raw,
                       env=no_tensorflow)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr  # absl adds a --help hint
    assert proc.stderr.splitlines()[0] == (
        'FATAL Flags parsing error: flag --ratio=%r: --ratio must be a number > 0 and at most %d '
        '(beyond, one count above black is white)' % (float(ratio), enhance.RATIO_LIMIT))
    assert os.listdir(str(tmp_path)) == ['a.dng']


def nan_checkpoint(folder):
    """A U-Net checkpoint whose last bias is NaN: every output pixel is NaN."""
    import tensorflow.compat.v1 as tf
    import network
    with tf.Graph().as_default():
        network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
        variables = network.model_variables()
        bias = [v for v in variables if v.op.name == 'g_conv10/biases'][0]
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(variables))
            sess.run(bias.assign(tf.fill(tf.shape(bias), float('nan'))))
            tf.train.Saver(variables).save(sess, str(folder / 'model.ckpt'))
    return str(folder)


def test_above_the_papers_ratio_warns_and_a_nan_output_stops_in_one_line(tmp_path, checkpoint):
    """Case 4: a non-finite network output became an all-black PNG and exit 0."""
    raw = write_raw(tmp_path / 'a.dng', np.full((32, 48), 600))
    proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=1000', raw)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == (
        "warning: --ratio=1000 is above the paper's largest, 300: the model never saw such an "
        "amplification (expect noise and colour casts)")
    assert (tmp_path / 'a_sid.png').is_file()
    broken = nan_checkpoint(tmp_path / 'nan')
    proc = enhance_run('--checkpoint_dir=%s' % broken, '--ratio=100', '--out_dir=%s'
                       % (tmp_path / 'out'), raw)
    error = last_error(proc)
    assert error.startswith('error: %s: the network output has ' % raw)
    assert error.endswith(' non-finite values (NaN) of 4608: the model or its input is broken')
    assert os.listdir(str(tmp_path / 'out')) == []


def test_two_runs_into_one_out_dir_never_lose_a_result(tmp_path, checkpoint):
    """Case 5: d1/x.dng and d2/x.dng into one --out_dir, one run after the other or at once: both
    said they succeeded and one result was lost."""
    out = tmp_path / 'out'
    (tmp_path / 'd1').mkdir()
    (tmp_path / 'd2').mkdir()
    first = write_raw(tmp_path / 'd1' / 'x.dng', np.full((32, 48), 600))
    second = write_raw(tmp_path / 'd2' / 'x.dng', np.full((32, 48), 900))
    proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=10', '--out_dir=%s' % out,
                       first)
    assert proc.returncode == 0, proc.stderr
    made = (out / 'x_sid.png').read_bytes()
    proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=10', '--out_dir=%s' % out,
                       second)
    assert last_error(proc) == ('error: %s: holds the output of %s, not of %s; give --overwrite to '
                                'replace it, or another --out_dir' % (out / 'x_sid.png', first,
                                                                      second))
    assert (out / 'x_sid.png').read_bytes() == made and 'model' not in proc.stdout
    # At once: the second run finds the folder in use (the first one held still meanwhile).
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1')
    holder = subprocess.Popen([sys.executable, os.path.join(ROOT, 'scripts', 'enhance.py'),
                               '--checkpoint_dir=%s' % checkpoint, '--ratio=20',
                               '--out_dir=%s' % out, first], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, env=env)
    try:
        for line in holder.stdout:
            if line.startswith('model '):
                holder.send_signal(signal.SIGSTOP)
                break
        proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=20', '--out_dir=%s' % out,
                           '--overwrite', second)
        assert last_error(proc).startswith('error: %s: in use by enhance.py (pid %d on '
                                           % (out, holder.pid))
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.communicate(timeout=300)
    assert holder.returncode == 0
    proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=20', '--out_dir=%s' % out,
                       '--overwrite', second)
    assert proc.returncode == 0, proc.stderr
    from test_Sony import finished_png
    assert finished_png(str(out / 'x_sid.png'))[0][enhance.SOURCE_KEY] == second


def test_an_unwritable_or_non_folder_out_dir_is_refused_before_tensorflow(
        tmp_path, checkpoint, no_tensorflow):
    """Case 10: refused only after the model had loaded and the first image had run. Root ignores
    chmod: the unwritable folder is under a regular file."""
    raw = write_raw(tmp_path / 'a.dng', np.full((32, 48), 600))
    (tmp_path / 'file').write_text('x')
    for out, reason in ((tmp_path / 'file', '%s is a file, not a folder' % (tmp_path / 'file')),
                        (tmp_path / 'file' / 'sub', 'Not a directory')):
        proc = enhance_run('--checkpoint_dir=%s' % checkpoint, '--ratio=10', '--out_dir=%s' % out,
                           raw, env=no_tensorflow)
        assert (proc.returncode, proc.stderr) == (
            1, 'error: %s: cannot write the enhanced images (%s)\n' % (out, reason))


def test_a_rerun_clears_a_killed_runs_temporaries_and_finishes_only_the_missing_files(
        tmp_path, checkpoint):
    """Case 11: a kill left a 0-byte hidden .tmp-* that no run removed, and a rerun redid every
    file. Outputs record source, model and settings: another model or ratio is recomputed."""
    raws = [write_raw(tmp_path / ('%s.dng' % n), np.full((32, 48), 600 + 50 * i))
            for i, n in enumerate('abc')]
    out = tmp_path / 'out'
    args = ['--checkpoint_dir=%s' % checkpoint, '--ratio=10', '--tiff', '--out_dir=%s' % out]
    proc = enhance_run(*(args + raws[:1]))
    assert proc.returncode == 0, proc.stderr
    made = dict((n, (out / n).read_bytes()) for n in ('a_sid.png', 'a_sid.tif'))
    killed = ['.tmp-0123abcd-b_sid.png', '.tmp-89abcdef-c_sid.tif']
    for name in killed + ['.tmp-notmine']:
        (out / name).write_bytes(b'')
    proc = enhance_run(*(args + raws))
    assert proc.returncode == 0, proc.stderr
    assert 'removed 2 temporary files of an interrupted run from %s (%s)' % (
        out, ', '.join(killed)) in proc.stdout
    assert sorted(printed_ratios(proc.stdout)) == raws[1:]
    assert 'enhanced 2 raw files, skipped 1 already done' in proc.stdout
    assert sorted(os.listdir(str(out))) == ['.tmp-notmine'] + sorted(
        '%s_sid.%s' % (n, e) for n in 'abc' for e in ('png', 'tif'))
    assert all((out / n).read_bytes() == data for n, data in made.items())
    import tifffile
    from test_Sony import finished_png
    stamps = json.loads(tifffile.TiffFile(str(out / 'b_sid.tif')).pages[0].description)
    assert stamps == dict((k, v) for k, v in finished_png(str(out / 'b_sid.png'))[0].items()
                          if k.startswith('sid_'))
    assert stamps[enhance.SOURCE_KEY] == os.path.realpath(raws[1])
    assert stamps[enhance.SETTINGS_KEY].startswith(
        'ratio=10.0 camera=bayer device=cpu precision=fp32 tiling=exact raw=')
    proc = enhance_run(*(args[:1] + ['--ratio=12'] + args[2:] + raws[:1]))  # another ratio
    assert proc.returncode == 0 and 'enhanced 1 raw files, skipped 0' in proc.stdout, proc.stderr


def test_a_graph_that_its_export_manifest_does_not_describe_is_refused(tmp_path, checkpoint,
                                                                       no_tensorflow):
    """A sid.pb mixed into another export (the kill of case 2 on an older version) is refused;
    a graph without a manifest runs with one warning line."""
    import export_model
    folder = tmp_path / 'export'
    folder.mkdir()
    (folder / 'sid.pb').write_bytes(b'new graph')
    (folder / (export_model.MANIFEST % 'sid')).write_text(json.dumps(
        {'files': {'sid.pb': safe_files.file_digest(__file__)}}))
    raw = write_raw(tmp_path / 'a.dng', np.full((32, 48), 600))
    proc = enhance_run('--model=%s' % (folder / 'sid.pb'), '--ratio=10', raw, env=no_tensorflow)
    assert (proc.returncode, proc.stderr) == (1, 'error: %s: differs from its export manifest %s '
                                                 '(changed since, or from another export); '
                                                 'export again\n'
                                              % (folder / 'sid.pb',
                                                 folder / (export_model.MANIFEST % 'sid')))


CRASH_RAWS = 6


def stamped_outputs(out):
    """{output name: its source raw} of the whole, stamped outputs in `out`; asserts that nothing
    else is there but a killed run's temporaries."""
    from test_Sony import finished_png
    found = {}
    for name in os.listdir(str(out)):
        if name.startswith(('.tmp-', '.sid.lock')):
            continue
        finished = finished_png(str(out / name))
        assert finished is not None, name  # never a partial output under its own name
        found[name] = finished[0][enhance.SOURCE_KEY]
    return found


def test_kill_9_at_random_moments_then_a_rerun_finishes_only_the_missing_files(
        tmp_path, checkpoint):
    """crash_trials() runs over 6 raws (20 on TF 1.15), each killed (SIGKILL) at a random moment
    between the model's loading and the end of a whole run (timed first, on this machine): every
    output present is whole and
    stamped with its own raw, each run enhances only raws without a finished output (the others
    are skipped), and a last run without a kill ends with all 6."""
    rng = random.Random(16)
    raws = [write_raw(tmp_path / ('r%d.dng' % i), mirror_consistent_rggb(128, 192, seed=i) + 512)
            for i in range(CRASH_RAWS)]
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1')
    cmd = [sys.executable, os.path.join(ROOT, 'scripts', 'enhance.py'),
           '--checkpoint_dir=%s' % checkpoint, '--ratio=50', '--out_dir=%s' % out] + raws

    def run(kill_after=None):
        """(printed lines, seconds from the model's loading to the end)"""
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                universal_newlines=True, env=env)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('model '):
                break
        start = time.time()
        if kill_after is not None:
            time.sleep(kill_after)
            proc.kill()
        lines += proc.stdout.readlines()
        proc.wait(timeout=600)
        return ''.join(lines), time.time() - start

    whole = run()[1]
    assert len(stamped_outputs(out)) == CRASH_RAWS
    finished = []
    for trial in range(crash_trials()):
        if len(stamped_outputs(out)) == CRASH_RAWS:  # start over, in part or whole
            for name in rng.sample(sorted(stamped_outputs(out)), rng.randint(3, CRASH_RAWS)):
                os.remove(str(out / name))
        before = stamped_outputs(out)
        printed = run(rng.uniform(0.0, whole))[0]
        redone = [r for r in printed_ratios(printed)
                  if os.path.basename(r)[:-4] + '_sid.png' in before]
        assert redone == [], trial  # a finished output is never made again
        after = stamped_outputs(out)
        assert all(after[name] == os.path.realpath(os.path.join(str(tmp_path), name[:-8] + '.dng'))
                   for name in after)
        assert set(before) <= set(after)
        finished.append(len(after) - len(before))
    printed = run()[0]
    done_before = CRASH_RAWS - len(printed_ratios(printed))
    assert 'enhanced %d raw files, skipped %d already done' % (
        CRASH_RAWS - done_before, done_before) in printed
    assert sorted(os.listdir(str(out))) == sorted('r%d_sid.png' % i for i in range(CRASH_RAWS))
    print('enhance kill -9 trials within %.1f s: outputs finished per killed run %s'
          % (whole, finished))
