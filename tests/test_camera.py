"""camera: the Sony profile is the paper's packing bit for bit; the generic Bayer profile packs any
bit depth, per-channel black level and CFA phase of the same scene to the same network input."""
import numpy as np
import pytest

import camera
import make_dataset
import sid_io

# (phase of the red pixel, CFA order from the top-left), as in tests/test_sid_io.py
PHASES = [((0, 0), 'RGGB'), ((0, 1), 'GRBG'), ((1, 0), 'GBRG'), ((1, 1), 'BGGR')]
# Levels chosen so that white - black is a multiple of LEVEL_STEPS for every channel: the scene's
# values k / LEVEL_STEPS are then exact raw counts at every bit depth (no rounding to compare).
LEVEL_STEPS = 64
BIT_DEPTHS = {12: (4095, (255, 319, 383, 447)),
              14: (16383, (511, 575, 639, 703)),
              16: (65535, (2047, 2111, 2175, 2239))}


def write_raw(path, bayer, **options):
    make_dataset.write_dng(str(path), np.asarray(bayer, np.uint16), 200, 8.0, 0.1, **options)
    return str(path)


def mirror_consistent_rggb(height, width, seed=0):
    """An RGGB mosaic whose outer rows and columns equal the same-colour ones two pixels in.

    Cut at an odd offset, align_bayer mirrors exactly those back: every phase cut of it packs to
    the same input (and the network gives the same image), with nothing left to "up to the edge".
    """
    bayer = np.random.default_rng(seed).integers(0, LEVEL_STEPS + 1, (height, width))
    bayer[0], bayer[-1] = bayer[2], bayer[-3]
    bayer[:, 0], bayer[:, -1] = bayer[:, 2], bayer[:, -3]
    return bayer


def phase_cut(bayer, phase):
    """The part of an RGGB mosaic that starts at `phase` and ends on a whole cell boundary."""
    dy, dx = phase
    return bayer[dy:bayer.shape[0] - dy, dx:bayer.shape[1] - dx]


def test_sony_profile_is_the_papers_pack_raw_bit_for_bit(tiny_dataset):
    for name in ('Sony/short/10001_00_0.033s.dng', 'Sony/long/00001_00_10s.dng'):
        path = str(tiny_dataset / name)
        packed = camera.packed_input(sid_io.read_mosaic(path), camera.SONY)
        expected = sid_io.pack_raw(path)
        assert packed.dtype == expected.dtype and packed.shape == expected.shape
        assert packed.tobytes() == expected.tobytes()


def test_sony_profile_keeps_the_paper_constants_whatever_the_file_says(tmp_path):
    path = write_raw(tmp_path / 'x.dng', np.full((32, 48), 1000), black=(60, 61, 62, 63),
                     white=4095)
    mosaic = sid_io.read_mosaic(path)
    black, white = camera.levels(camera.SONY, mosaic)
    assert (float(black), float(white)) == (512.0, 16383.0)
    black, white = camera.levels(camera.BAYER, mosaic)
    assert black.tolist() == [60, 61, 63, 62] and white.tolist() == [4095] * 4


@pytest.mark.parametrize('phase,cfa', PHASES)
def test_bit_depths_and_per_channel_blacks_pack_the_same_scene_to_the_same_values(
        tmp_path, phase, cfa):
    levels = mirror_consistent_rggb(34, 50)  # scene values k / LEVEL_STEPS, k in [0, 64]
    scene = phase_cut(levels, phase)
    reference = None
    for bits, (white, cell_black) in sorted(BIT_DEPTHS.items()):
        # Position (y, x) of the 2x2 cell gets black cell_black[2y + x] and its own range.
        black = np.array(cell_black)[np.add.outer(np.arange(scene.shape[0]) % 2 * 2,
                                                  np.arange(scene.shape[1]) % 2)]
        counts = black + scene * (white - black) // LEVEL_STEPS
        path = write_raw(tmp_path / ('%d.dng' % bits), counts, cfa=cfa, black=cell_black,
                         white=white)
        packed = camera.packed_input(sid_io.read_mosaic(path), camera.BAYER)
        if reference is None:
            reference = packed
        np.testing.assert_array_equal(packed, reference)
    # ... and they are the scene itself, aligned and packed: k / 64 exactly.
    expected = sid_io.pack_bayer(levels).astype(np.float32) / LEVEL_STEPS
    np.testing.assert_array_equal(reference, expected)


def test_the_four_cfa_phases_of_one_scene_pack_to_one_input(tmp_path):
    bayer = mirror_consistent_rggb(34, 50, seed=1) * 200 + 600
    inputs = []
    for phase, cfa in PHASES:
        path = write_raw(tmp_path / (cfa + '.dng'), phase_cut(bayer, phase), cfa=cfa)
        mosaic = sid_io.read_mosaic(path)
        assert mosaic.phase == phase
        inputs.append(camera.packed_input(mosaic, camera.BAYER))
    assert inputs[0].shape == (17, 25, 4)
    for packed in inputs[1:]:
        np.testing.assert_array_equal(packed, inputs[0])


def test_profiles_are_data():
    assert camera.PROFILES == {'Sony': camera.SONY, 'Fuji': camera.FUJI, 'bayer': camera.BAYER}
    assert camera.DATASETS == ('Sony', 'Fuji')
    assert camera.SONY.black == sid_io.BLACK_LEVEL and camera.SONY.white == sid_io.WHITE_LEVEL
    assert camera.BAYER.black == camera.BAYER.white == camera.FROM_FILE
    assert camera.FUJI == camera.Profile(
        name='Fuji', cfa='xtrans', black=1024, white=16383, packing='xtrans', block=3, channels=9,
        extension='.RAF', lists=('Fuji_train_list.txt', 'Fuji_test_list.txt',
                                 'Fuji_val_list.txt'), misaligned=())
    for profile in camera.PROFILES.values():
        packing = camera.PACKINGS[profile.packing]
        assert profile.cfa == profile.packing and profile.channels == packing.channels
        assert profile.channels == profile.block ** 2  # one packed pixel per block x block sites
    assert camera.PACKINGS['xtrans'].multiple == 6 and camera.PACKINGS['bayer'].multiple == 2
    assert camera.for_channels(4) == 'Sony/bayer' and camera.for_channels(9) == 'Fuji'
    bayer = sid_io.Mosaic(np.zeros((4, 4), np.uint16), (0, 0), 0, 1, 0, 'bayer')
    with pytest.raises(ValueError, match='a bayer mosaic for the Fuji profile'):
        camera.packed_input(bayer, camera.FUJI)
    with pytest.raises(ValueError, match='constant levels'):
        camera.packed_raw('x.dng', camera.BAYER)


def test_flags_with_a_cameras_default_follow_the_camera():
    from absl import flags
    values = flags.FlagValues()
    camera.define_flag(flag_values=values)
    for name, default in (('train_list', './Sony_train_list.txt'), ('val_list', ''),
                          ('checkpoint_dir', './checkpoint/Sony/'), ('result_dir', '/r/')):
        flags.DEFINE_string(name, default, '', flag_values=values)
    values(['train_Fuji.py', '--checkpoint_dir=/mine/'])
    camera.use_defaults(values, camera.FUJI)  # what train_Fuji.py does, here after parsing
    assert (values.camera, values.train_list, values.checkpoint_dir) == (
        'Fuji', './Fuji_train_list.txt', '/mine/')  # given on the command line: kept
    assert (values.val_list, values.result_dir) == ('', '/r/')  # not a camera's default: kept
    assert values['train_list'].default == './Fuji_train_list.txt'  # what --help shows
    camera.use_defaults(values, camera.SONY)  # train_Fuji.py --camera=Sony
    assert (values.camera, values.train_list) == ('Sony', './Sony_train_list.txt')
    values(['train_Sony.py', '--camera=fuji'])  # any case
    assert values.camera == 'Fuji'


def test_the_packed_inputs_of_both_cameras(tiny_dataset, tiny_fuji_dataset):
    sony = str(tiny_dataset / 'Sony/short/10001_00_0.033s.dng')
    assert camera.packed_raw(sony, camera.SONY).tobytes() == sid_io.pack_raw(sony).tobytes()
    fuji = str(tiny_fuji_dataset / 'Fuji/short/10001_00_0.033s.dng')
    mosaic = sid_io.read_mosaic(fuji)
    assert mosaic.cfa == 'xtrans' and mosaic.phase == (0, 0)
    packed = camera.packed_raw(fuji, camera.FUJI)
    assert packed.shape == (510 // 3, 516 // 3, 9)  # 512 x 520 cropped to multiples of 6
    expected = sid_io.normalize(sid_io.pack_xtrans(mosaic.counts), 1024, 16383)
    assert packed.tobytes() == expected.tobytes()
    # The enhance command's input covers the whole raw: extended to 516 x 522, the cropped part
    # packs as the authors pack it.
    whole = camera.packed_input(mosaic, camera.FUJI)
    assert whole.shape == (516 // 3, 522 // 3, 9)
    np.testing.assert_array_equal(whole[:170, :172], packed)
