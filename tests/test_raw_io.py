"""raw_io: packing against the paper's formula, the ground truth, EXIF, every camera's mosaic
(read_mosaic), and bad raw files refused in one line naming the file."""

import numpy as np
import pytest

import cli
import make_dataset
import raw_io


def write_raw(path, bayer, iso=200, fnumber=8.0, exposure=0.1, **camera):
    make_dataset.write_dng(str(path), np.asarray(bayer, dtype=np.uint16), iso, fnumber, exposure,
                           **camera)
    return str(path)


def random_bayer(shape=(48, 64), seed=0):
    # Include values below the black level and at the white level: both clip in pack_raw.
    return np.random.default_rng(seed).integers(0, raw_io.WHITE_LEVEL + 1, size=shape)


# ---------------------------------------------------------------- packing

def test_pack_raw_equals_the_paper_formula_exactly(tmp_path):
    bayer = random_bayer()
    path = write_raw(tmp_path / '00001_00_0.1s.dng', bayer)
    packed = raw_io.pack_raw(path)
    im = np.maximum(bayer.astype(np.float32) - 512, 0) / (16383 - 512)
    expected = np.concatenate([im[0::2, 0::2, None], im[0::2, 1::2, None],
                               im[1::2, 1::2, None], im[1::2, 0::2, None]], axis=2)
    assert packed.dtype == np.float32 and packed.shape == (24, 32, 4)
    np.testing.assert_array_equal(packed, expected)
    amplified = raw_io.amplify(packed, 250)
    np.testing.assert_array_equal(amplified, np.minimum(expected * 250, 1.0))


def test_pack_bayer_channel_order_is_r_g_b_g():
    cell = np.array([[1, 2], [4, 3]], dtype=np.uint16)  # R G / G2 B  -> R G B G2 = 1 2 3 4
    packed = raw_io.pack_bayer(np.tile(cell, (3, 5)))
    assert packed.shape == (3, 5, 4) and packed.dtype == np.uint16
    assert (packed == np.array([1, 2, 3, 4])).all()


def test_ground_truth_follows_postprocess_linear_formula(tmp_path):
    # With gamma (1, 1) a flat raw comes out as (raw - black) / (white - black) * 65535.
    value = 6000
    path = write_raw(tmp_path / '00001_00_10s.dng', np.full((32, 48), value))
    linear = raw_io.postprocess(path, gamma=(1, 1))
    assert linear.dtype == np.uint16 and linear.shape == (32, 48, 3)
    expected = (value - 512) / (16383.0 - 512) * 65535
    assert np.abs(linear.astype(np.float64) - expected).max() <= 1
    gt = raw_io.read_ground_truth(path)
    assert gt.dtype == np.float32 and gt.shape == (32, 48, 3)
    assert 0 < gt.min() and gt.max() <= 1  # default sRGB gamma brightens mid-grey
    assert gt.mean() > expected / 65535


def test_read_exif_reads_iso_fnumber_and_exposure(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.033s.dng', random_bayer(), iso=1600, fnumber=5.6,
                     exposure=0.033)
    assert raw_io.read_exif(path) == (1600, pytest.approx(5.6), pytest.approx(0.033))


# ---------------------------------------------------------------- bad raw files

def test_corrupt_raw_names_the_file(tmp_path):
    path = tmp_path / '00001_00_0.1s.dng'
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(cli.SidError, match='00001_00_0.1s.dng: not a readable raw file'):
        raw_io.pack_raw(str(path))


TRUNCATED = '00001_00_0.1s.dng: raw data is corrupt or truncated'


def test_truncated_raw_names_the_file(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.1s.dng', random_bayer((256, 384)))
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(cli.SidError, match=TRUNCATED):
        raw_io.pack_raw(path)
    with pytest.raises(cli.SidError, match=TRUNCATED):
        raw_io.read_ground_truth(path)


def test_non_raw_file_names_the_file(tmp_path):
    from PIL import Image
    path = tmp_path / '00001_00_0.1s.png'
    Image.new('RGB', (32, 32)).save(str(path))
    with pytest.raises(cli.SidError, match='00001_00_0.1s.png: not a readable raw file'):
        raw_io.read_bayer(str(path))


def test_odd_sized_raw_names_the_file(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.1s.dng', random_bayer((47, 64)))
    with pytest.raises(cli.SidError, match=r'00001_00_0.1s.dng: raw size 47x64 is not even'):
        raw_io.pack_raw(path)


def test_missing_raw_names_the_file(tmp_path):
    with pytest.raises(cli.SidError, match='00001_00_0.1s.dng: raw file not found'):
        raw_io.pack_raw(str(tmp_path / '00001_00_0.1s.dng'))


def test_non_rggb_raw_is_refused_by_the_paper_path(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.1s.dng', random_bayer(), cfa='GRBG')
    with pytest.raises(cli.SidError, match=r'00001_00_0.1s.dng: CFA order GRBG, expected RGGB'):
        raw_io.pack_raw(path)


# ---------------------------------------------------------------- any camera (read_mosaic)

# (phase of the red pixel, CFA order from the top-left) for the four Bayer layouts
PHASES = [((0, 0), 'RGGB'), ((0, 1), 'GRBG'), ((1, 0), 'GBRG'), ((1, 1), 'BGGR')]


@pytest.mark.parametrize('phase,cfa', PHASES)
def test_read_mosaic_finds_the_phase_and_each_positions_own_black_level(tmp_path, phase, cfa):
    """LibRaw reports black levels by colour (R, G, B, G2); read_mosaic gives them per packed
    channel R, G, B, G after alignment, i.e. per position: write a different black per position."""
    cell_black = (500, 510, 520, 530)  # positions (0,0), (0,1), (1,0), (1,1)
    bayer = random_bayer((40, 56), seed=3)
    path = write_raw(tmp_path / 'x.dng', bayer, cfa=cfa, black=cell_black, white=4095)
    mosaic = raw_io.read_mosaic(path)
    assert mosaic.phase == phase and mosaic.flip == 0
    np.testing.assert_array_equal(mosaic.counts, bayer)
    dy, dx = phase
    expected = [cell_black[2 * ((y + dy) % 2) + (x + dx) % 2] for y, x in raw_io.BAYER_OFFSETS]
    assert mosaic.black.tolist() == expected and mosaic.white.tolist() == [4095] * 4
    colours = [cfa[2 * ((y + dy) % 2) + (x + dx) % 2] for y, x in raw_io.BAYER_OFFSETS]
    assert colours == list('RGBG')  # the aligned cell is the network's R, G, B, G


@pytest.mark.parametrize('phase', [p for p, _ in PHASES])
@pytest.mark.parametrize('shape', [(6, 8), (7, 9)])
def test_align_bayer_mirrors_same_colour_pixels_to_an_rggb_start(phase, shape):
    dy, dx = phase  # red pixel at (dy, dx): pixel (y, x) has cell position (y + dy, x + dx) mod 2
    colour = np.add.outer((np.arange(shape[0]) + dy) % 2 * 2, (np.arange(shape[1]) + dx) % 2)
    aligned = raw_io.align_bayer(np.asarray(colour, np.uint16), phase)
    assert aligned.shape[0] % 2 == 0 and aligned.shape[1] % 2 == 0
    assert aligned.shape[0] - shape[0] in (0, 1, 2) and aligned.shape[1] - shape[1] in (0, 1, 2)
    np.testing.assert_array_equal(aligned[dy:dy + shape[0], dx:dx + shape[1]], colour)
    np.testing.assert_array_equal(aligned, np.add.outer(np.arange(aligned.shape[0]) % 2 * 2,
                                                        np.arange(aligned.shape[1]) % 2))


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orient_turns_like_libraw(tmp_path, orientation):
    """raw_io.orient(image, flip) against rawpy's own postprocess with and without flipping."""
    path = write_raw(tmp_path / 'x.dng', random_bayer((24, 40)), orientation=orientation)
    mosaic = raw_io.read_mosaic(path)
    turned = raw_io.postprocess(path, half_size=True, user_flip=-1)  # LibRaw's own turning
    flat = raw_io.postprocess(path, half_size=True)  # the sensor's orientation (GT_POSTPROCESS)
    assert (mosaic.flip != 0) == (orientation != 1)
    np.testing.assert_array_equal(raw_io.orient(flat, mosaic.flip), turned)


def unsupported_files(tmp_path):
    """{name: (path, reason)}: one file of every kind that is not an RGB Bayer raw."""
    from PIL import Image
    bayer = random_bayer((32, 48))
    files = {  # X-Trans in another phase than the X-T2's: the 9-channel packing would mix colours
        'xtrans': (write_raw(tmp_path / 'xtrans.dng', bayer[:30, :48],
                             cfa='GGRGGB' 'GGBGGR' 'BRGRBG' 'GGBGGR' 'GGRGGB' 'RBGBRG'),
                   'X-Trans CFA is GGRGGB/GGBGGR/BRGRBG/GGBGGR/GGRGGB/RBGBRG, expected the X-T2 '
                   'phase'),
        'monochrome': (write_raw(tmp_path / 'mono.dng', bayer, cfa=None),
                       'monochrome sensor: no colour filter array'),
        'linear': (write_raw(tmp_path / 'linear.dng', np.stack([bayer] * 3, -1), cfa=None,
                             photometric=make_dataset.PHOTOMETRIC_LINEAR_RAW),
                   'linear DNG: already demosaiced, no CFA'),
        'cmyg': (write_raw(tmp_path / 'cmyg.dng', bayer, cfa='CMYG'),
                 'not an RGB Bayer sensor (CFA pattern 2x2'),
    }
    import tifffile
    tifffile.imwrite(str(tmp_path / 'mono1.dng'), bayer.astype(np.uint16), photometric=1,
                     metadata=None, extratags=[(50706, 1, 4, (1, 4, 0, 0), True)])
    files['monochrome DNG'] = (str(tmp_path / 'mono1.dng'),
                               'monochrome DNG: no colour filter array')
    tifffile.imwrite(str(tmp_path / 'scan.tif'), np.stack([bayer] * 3, -1).astype(np.uint16),
                     photometric='rgb')
    files['scanner'] = (str(tmp_path / 'scan.tif'), 'not a readable raw file: a TIFF image '
                        'without camera raw data')
    Image.new('RGB', (32, 32)).save(str(tmp_path / 'photo.jpg'))
    files['jpeg'] = (str(tmp_path / 'photo.jpg'), 'not a readable raw file: a JPEG image')
    (tmp_path / 'sigma.x3f').write_bytes(raw_io.FOVEON_MAGIC + bytes(4096))
    files['foveon'] = (str(tmp_path / 'sigma.x3f'), 'Foveon X3 sensor')
    data = open(write_raw(tmp_path / 'cut.dng', random_bayer((256, 384))), 'rb').read()
    (tmp_path / 'cut.dng').write_bytes(data[:len(data) // 2])
    files['truncated'] = (str(tmp_path / 'cut.dng'), 'raw data is corrupt or truncated')
    return files


def test_unsupported_raws_are_refused_in_plain_words_on_one_line(tmp_path, capfd):
    files = unsupported_files(tmp_path)
    capfd.readouterr()
    for kind, (path, reason) in sorted(files.items()):
        with pytest.raises(cli.SidError) as error:
            raw_io.read_mosaic(path)
        assert str(error.value).startswith('%s: %s' % (path, reason)), kind
        assert '\n' not in str(error.value)
    out, err = capfd.readouterr()
    assert (out, err) == ('', '')  # LibRaw's own "Unexpected end of file" is not printed too
