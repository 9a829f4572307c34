"""scripts/enhance.py: one scene in any CFA phase, bit depth or orientation gives the same image,
tiles change nothing, a frozen graph gives what the checkpoint gives, the ratio rule, and every
input it cannot handle is refused in one line before TensorFlow loads."""
import os
import re

import numpy as np
import pytest
from PIL import Image

import bench_inference
import camera
import enhance
import inference
import sid_io
from conftest import run_script
from test_camera import PHASES, mirror_consistent_rggb, phase_cut, write_raw
from test_sid_io import unsupported_files

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
    packed = camera.packed_input(sid_io.read_mosaic(raws['RGGB']), camera.BAYER)
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
    assert enhance.auto_ratio(np.zeros_like(flat)) == sid_io.MAX_RATIO  # black: the cap
    assert enhance.auto_ratio(flat + 0.5) == enhance.AUTO_RATIO_MIN     # bright: left alone


@pytest.fixture(scope='module')
def no_tensorflow(tmp_path_factory):
    """A PYTHONPATH on which importing TensorFlow fails: refusals must come before it."""
    folder = tmp_path_factory.mktemp('no_tf')
    (folder / 'tensorflow').mkdir()
    (folder / 'tensorflow' / '__init__.py').write_text('raise ImportError("TensorFlow loaded")\n')
    return {'PYTHONPATH': os.pathsep.join([str(folder), os.path.dirname(os.path.dirname(
        os.path.abspath(enhance.__file__)))])}


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
        packed = sid_io.amplify(camera.packed_input(sid_io.read_mosaic(raw), camera.FUJI), 100)
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
