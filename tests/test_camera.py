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
    assert camera.PROFILES == {'Sony': camera.SONY, 'bayer': camera.BAYER}
    assert camera.SONY.black == sid_io.BLACK_LEVEL and camera.SONY.white == sid_io.WHITE_LEVEL
    assert camera.BAYER.black == camera.BAYER.white == camera.FROM_FILE
    for profile in camera.PROFILES.values():
        assert profile.cfa == 'bayer' and profile.packing in camera.PACKINGS
        assert (profile.block, profile.channels) == (2, 4)
    with pytest.raises(ValueError, match='xtrans'):
        camera.packed_input(None, camera.BAYER._replace(cfa='xtrans'))
