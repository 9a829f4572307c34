"""camera: the Sony profile is the paper's packing bit for bit; the generic Bayer profile packs any
bit depth, per-channel black level and CFA phase of the same scene to the same network input."""
import numpy as np
import pytest

import camera
import cli
import make_dataset
import raw_io
import xtrans

# (phase of the red pixel, CFA order from the top-left), as in tests/test_raw_io.py
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
        packed = camera.packed_input(raw_io.read_mosaic(path), camera.SONY)
        expected = raw_io.pack_raw(path)
        assert packed.dtype == expected.dtype and packed.shape == expected.shape
        assert packed.tobytes() == expected.tobytes()


def test_sony_profile_keeps_the_paper_constants_whatever_the_file_says(tmp_path):
    path = write_raw(tmp_path / 'x.dng', np.full((32, 48), 1000), black=(60, 61, 62, 63),
                     white=4095)
    mosaic = raw_io.read_mosaic(path)
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
        packed = camera.packed_input(raw_io.read_mosaic(path), camera.BAYER)
        if reference is None:
            reference = packed
        np.testing.assert_array_equal(packed, reference)
    # ... and they are the scene itself, aligned and packed: k / 64 exactly.
    expected = raw_io.pack_bayer(levels).astype(np.float32) / LEVEL_STEPS
    np.testing.assert_array_equal(reference, expected)


def test_the_four_cfa_phases_of_one_scene_pack_to_one_input(tmp_path):
    bayer = mirror_consistent_rggb(34, 50, seed=1) * 200 + 600
    inputs = []
    for phase, cfa in PHASES:
        path = write_raw(tmp_path / (cfa + '.dng'), phase_cut(bayer, phase), cfa=cfa)
        mosaic = raw_io.read_mosaic(path)
        assert mosaic.phase == phase
        inputs.append(camera.packed_input(mosaic, camera.BAYER))
    assert inputs[0].shape == (17, 25, 4)
    for packed in inputs[1:]:
        np.testing.assert_array_equal(packed, inputs[0])


def test_profiles_are_data():
    assert camera.PROFILES == {'Sony': camera.SONY, 'Fuji': camera.FUJI, 'bayer': camera.BAYER}
    assert camera.DATASETS == ('Sony', 'Fuji') and camera.CAMERAS == ('Sony', 'Fuji', 'bayer')
    assert camera.SONY.black == raw_io.BLACK_LEVEL and camera.SONY.white == raw_io.WHITE_LEVEL
    assert camera.BAYER.black == camera.BAYER.white == camera.FROM_FILE
    assert camera.FUJI == camera.Profile(
        name='Fuji', cfa='xtrans', black=1024, white=16383, packing='xtrans', block=3, channels=9,
        extension='.RAF', lists=('Fuji_train_list.txt', 'Fuji_test_list.txt',
                                 'Fuji_val_list.txt'), misaligned=())
    assert dict((p.name, p.packing) for p in camera.PROFILES.values()) == {
        'Sony': 'bayer', 'Fuji': 'xtrans', 'bayer': 'bayer_any'}
    for profile in camera.PROFILES.values():
        packing = camera.PACKINGS[profile.packing]
        assert profile.packing.split('_')[0] == profile.cfa
        assert profile.channels == packing.channels
        assert profile.channels == profile.block ** 2  # one packed pixel per block x block sites
        # a cache entry of the file's levels exactly where the profile reads them from the file
        assert bool(packing.levels_kind) == (camera.FROM_FILE in (profile.black, profile.white))
    assert camera.PACKINGS['xtrans'].multiple == 6 and camera.PACKINGS['bayer'].multiple == 2
    assert camera.for_channels(4) == 'Sony/bayer' and camera.for_channels(9) == 'Fuji'
    bayer = raw_io.Mosaic(np.zeros((4, 4), np.uint16), (0, 0), 0, 1, 0, 'bayer')
    with pytest.raises(ValueError, match='a bayer mosaic for the Fuji profile'):
        camera.packed_input(bayer, camera.FUJI)


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
    assert camera.packed_raw(sony, camera.SONY).tobytes() == raw_io.pack_raw(sony).tobytes()
    fuji = str(tiny_fuji_dataset / 'Fuji/short/10001_00_0.033s.dng')
    mosaic = raw_io.read_mosaic(fuji)
    assert mosaic.cfa == 'xtrans' and mosaic.phase == (0, 0)
    packed = camera.packed_raw(fuji, camera.FUJI)
    assert packed.shape == (510 // 3, 516 // 3, 9)  # 512 x 520 cropped to multiples of 6
    expected = raw_io.normalize(xtrans.pack_xtrans(mosaic.counts), 1024, 16383)
    assert packed.tobytes() == expected.tobytes()
    # The enhance command's input covers the whole raw: extended to 516 x 522, the cropped part
    # packs as the authors pack it.
    whole = camera.packed_input(mosaic, camera.FUJI)
    assert whole.shape == (516 // 3, 522 // 3, 9)
    np.testing.assert_array_equal(whole[:170, :172], packed)


@pytest.mark.parametrize('phase,cfa', PHASES)
def test_bayer_profile_packs_a_raw_as_enhance_does_inside_the_red_cut(tmp_path, phase, cfa):
    """packed_raw (training and test_Sony.py) is enhance.py's packed_input, without the mirrored
    edge: the mosaic cut to start on its red pixel with even sides, at most one row and column
    less at each side, the file's levels per packed channel."""
    bayer = mirror_consistent_rggb(35, 51, seed=3) * 50 + 700  # odd sides: a row/column goes
    path = write_raw(tmp_path / 'x.dng', phase_cut(bayer, phase), cfa=cfa,
                     black=(600, 601, 602, 603), white=4095)
    mosaic = raw_io.read_mosaic(path)
    packed = camera.packed_raw(path, camera.BAYER)
    (dy, dx), (height, width) = mosaic.phase, mosaic.counts.shape
    assert packed.shape == ((height - dy) // 2, (width - dx) // 2, 4)
    assert height - 2 * packed.shape[0] <= 2 and width - 2 * packed.shape[1] <= 2
    whole = camera.packed_input(mosaic, camera.BAYER)
    np.testing.assert_array_equal(packed, whole[dy:dy + packed.shape[0], dx:dx + packed.shape[1]])
    # ... which is the formula: (counts - black_c) / (white_c - black_c) at the R, G, B, G sites
    cut = mosaic.counts[dy:dy + 2 * packed.shape[0], dx:dx + 2 * packed.shape[1]]
    cell_black = dict(zip(((0, 0), (0, 1), (1, 0), (1, 1)), (600, 601, 602, 603)))
    for c, (y, x) in enumerate(raw_io.BAYER_OFFSETS):
        black = np.float32(cell_black[((y + dy) % 2, (x + dx) % 2)])
        want = np.maximum(cut[y::2, x::2].astype(np.float32) - black, 0)
        want /= np.float32(4095) - black
        np.testing.assert_array_equal(packed[..., c], want)


def test_bayer_profile_on_an_rggb_raw_with_the_sony_levels_is_the_sony_packing(tiny_dataset):
    for name in ('Sony/short/10001_00_0.033s.dng', 'Sony/long/00001_00_10s.dng'):
        path = str(tiny_dataset / name)
        assert camera.packed_raw(path, camera.BAYER).tobytes() == \
            camera.packed_raw(path, camera.SONY).tobytes()


@pytest.mark.parametrize('orientation', [3, 6, 8])
def test_ground_truth_stays_on_the_mosaic_grid_whatever_the_orientation(tmp_path, orientation):
    """LibRaw turns its output by the file's orientation (3: 180 degrees, same size); the packed
    input is never turned, so the ground truth is developed in the sensor's orientation - for the
    paper's Sony packing too."""
    rggb = mirror_consistent_rggb(34, 50, seed=5) * 50 + 700
    upright_rggb = write_raw(tmp_path / 'upright_rggb.dng', rggb)
    turned_rggb = write_raw(tmp_path / 'turned_rggb.dng', rggb, orientation=orientation)
    np.testing.assert_array_equal(raw_io.develop(turned_rggb, camera.SONY.packing),
                                  raw_io.develop(upright_rggb, camera.SONY.packing))
    bayer = mirror_consistent_rggb(35, 51, seed=4) * 50 + 700
    upright = write_raw(tmp_path / 'upright.dng', phase_cut(bayer, (1, 0)), cfa='GBRG')
    turned = write_raw(tmp_path / 'turned.dng', phase_cut(bayer, (1, 0)), cfa='GBRG',
                       orientation=orientation)
    assert raw_io.read_mosaic(turned).flip != 0
    gt = raw_io.develop(upright, camera.BAYER.packing)
    assert gt.shape == (32, 50, 3)  # 33 x 51 from row 1: rows 1-32, columns 0-49
    np.testing.assert_array_equal(raw_io.develop(turned, camera.BAYER.packing), gt)
    # the developed image is cut like the mosaic: the full development at the same offset
    full = raw_io.postprocess(upright, 'bayer_any', user_flip=0)
    np.testing.assert_array_equal(gt, full[1:33, 0:50])
    with raw_io.open_raw(turned) as raw:  # what LibRaw does unasked: turn it
        default = raw.postprocess(**dict(raw_io.GT_POSTPROCESS, user_flip=-1))
    assert default.shape != full.shape or not np.array_equal(default, full)


def test_bayer_profile_needs_the_list_flags(tmp_path):
    from absl import flags
    values = flags.FlagValues()
    camera.define_flag(flag_values=values)
    for name, default in (('train_list', './Sony_train_list.txt'),
                          ('val_list', './Sony_val_list.txt'),
                          ('checkpoint_dir', './checkpoint/Sony/')):
        flags.DEFINE_string(name, default, '', flag_values=values)
    values(['train_Sony.py', '--camera=bayer'])
    camera.use_defaults(values, camera.BAYER)
    assert (values.train_list, values.val_list, values.checkpoint_dir) == (
        '', '', './checkpoint/bayer/')
    with pytest.raises(cli.SidError) as e:
        camera.required_list(values, 'train_list', camera.BAYER)
    assert str(e.value) == ('--train_list is empty (--camera=bayer has no default lists): name '
                            'your list file ("short long ISO F" per line)')
    values(['train_Sony.py', '--camera=bayer', '--train_list=mine.txt'])
    assert camera.required_list(values, 'train_list', camera.BAYER) == 'mine.txt'
