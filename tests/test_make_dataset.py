"""scripts/make_dataset.py: SID layout, determinism, physics of the short exposures, list files,
natural scenes from shipped photographs and their one-line errors."""
import filecmp
import os

import numpy as np
import pytest

import cli
import make_dataset
import noise_model
import raw_io
import sid_lists
import unprocess
import xtrans
from conftest import (FUJI_HEIGHT, FUJI_WIDTH, OFFICIAL_LISTS, ROOT, make_tiny_dataset,
                      official_lines, run_script)


def all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), str(root))
                  for d, _, fs in os.walk(str(root)) for f in fs)


def test_layout_names_and_splits(tiny_dataset):
    shorts = sorted(os.listdir(str(tiny_dataset / 'Sony' / 'short')))
    longs = sorted(os.listdir(str(tiny_dataset / 'Sony' / 'long')))
    assert longs == ['00001_00_10s.dng', '00002_00_10s.dng', '00003_00_10s.dng',
                     '10001_00_10s.dng', '10002_00_10s.dng', '20001_00_10s.dng']
    assert len(shorts) == 2 * len(longs)  # two burst frames per scene
    ratios = {sid_lists.exposure_ratio(s, '00001_00_10s.dng') for s in shorts}
    assert ratios == {100, 250, 300}
    for split, name in make_dataset.LIST_NAMES.items():
        pairs = sid_lists.read_list(str(tiny_dataset / name), str(tiny_dataset))
        assert {sid_lists.parse_name(p.short)[0] // 10000 for p in pairs} == {
            sid_lists.SPLITS[split]}


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path):
    make_tiny_dataset(tmp_path / 'a', n_train=2, n_test=1, n_val=0)
    make_tiny_dataset(tmp_path / 'b', n_train=2, n_test=1, n_val=0)
    make_tiny_dataset(tmp_path / 'c', n_train=2, n_test=1, n_val=0, seed=1)
    files = all_files(tmp_path / 'a')
    assert files == all_files(tmp_path / 'b') and len(files) == 3 + 3 * 3
    match, mismatch, errors = filecmp.cmpfiles(str(tmp_path / 'a'), str(tmp_path / 'b'), files,
                                               shallow=False)
    assert (len(match), mismatch, errors) == (len(files), [], [])
    raw = 'Sony/short/00001_00_0.04s.dng'
    assert not filecmp.cmp(str(tmp_path / 'a' / raw), str(tmp_path / 'c' / raw), shallow=False)


def test_raws_decode_like_sony_files_with_structure_and_noise(tiny_dataset):
    long_path = str(tiny_dataset / 'Sony/long/00001_00_10s.dng')
    mosaic = raw_io.read_mosaic(long_path)  # the levels the file itself declares
    assert mosaic.counts.shape == (96, 136) and mosaic.phase == (0, 0) and mosaic.flip == 0
    assert mosaic.black.tolist() == [512] * 4 and mosaic.white.tolist() == [16383] * 4
    long_ = raw_io.pack_raw(long_path)
    assert long_.std() > 0.1  # edges, gradients and textures, not a flat field
    short_path = str(tiny_dataset / 'Sony/short/00001_00_0.04s.dng')
    short = raw_io.pack_raw(short_path)
    ratio = sid_lists.exposure_ratio(short_path, long_path)
    # Dark by the exposure ratio on average, but noisy: amplifying does not give the long back.
    assert short.mean() * ratio == pytest.approx(long_.mean(), rel=0.05)
    residual = short * ratio - long_
    assert residual.std() > 0.05
    other_burst = raw_io.pack_raw(str(tiny_dataset / 'Sony/short/00001_01_0.04s.dng'))
    assert not np.array_equal(short, other_burst)  # independent noise per burst frame


def test_exif_carries_iso_fnumber_and_exposure(tiny_dataset):
    iso, fnumber, exposure = raw_io.read_exif(str(tiny_dataset / 'Sony/short/10001_00_0.033s.dng'))
    assert iso in make_dataset.ISO_CHOICES and fnumber in make_dataset.F_CHOICES
    assert exposure == pytest.approx(0.033)
    line = (tiny_dataset / 'Sony_test_list.txt').read_text().splitlines()[0]
    assert line == './Sony/short/10001_00_0.033s.dng ./Sony/long/10001_00_10s.dng ISO%d F%g' % (
        iso, fnumber)


def test_full_size_is_a_flag_and_bad_sizes_fail_in_one_line(tmp_path):
    result = run_script('scripts/make_dataset.py', '--data_dir', tmp_path, '--list_dir', tmp_path,
                        '--height', 95, '--width', 136)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        'error: --height/--width must be even and >= 22 (LibRaw minimum), got 95x136']
    assert not os.path.exists(str(tmp_path / 'Sony'))


# ---------------------------------------------------------------- Fuji X-Trans (--camera=fuji)
# The smallest raws LibRaw demosaics (postprocess) as X-Trans; neither side a multiple of 6, like
# the X-T2's 6032 columns, so packing crops.
GT_FLAGS = dict(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16)


def test_the_shared_fuji_set_has_the_smallest_demosaicable_size():
    assert (FUJI_HEIGHT, FUJI_WIDTH) == (make_dataset.XTRANS_MIN_SIDE,
                                         make_dataset.XTRANS_MIN_SIDE + 8)


@pytest.fixture(scope='module')
def tiny_fuji(tiny_fuji_dataset):
    return tiny_fuji_dataset


def test_fuji_layout_names_and_lists(tiny_fuji):
    assert sorted(os.listdir(str(tiny_fuji))) == [
        'Fuji', 'Fuji_test_list.txt', 'Fuji_train_list.txt', 'Fuji_val_list.txt']
    assert sorted(os.listdir(str(tiny_fuji / 'Fuji' / 'long'))) == [
        '00001_00_10s.dng', '00002_00_10s.dng', '10001_00_10s.dng', '20001_00_10s.dng']
    assert len(os.listdir(str(tiny_fuji / 'Fuji' / 'short'))) == 2 * 4
    for split, name in make_dataset.FUJI_LIST_NAMES.items():
        assert name == 'Fuji_%s_list.txt' % split
        pairs = sid_lists.read_list(str(tiny_fuji / name), str(tiny_fuji))
        assert {sid_lists.parse_name(p.short)[0] // 10000 for p in pairs} == {
            sid_lists.SPLITS[split]}
    line = (tiny_fuji / 'Fuji_test_list.txt').read_text().splitlines()[0]
    iso, fnumber, _ = raw_io.read_exif(str(tiny_fuji / 'Fuji/short/10001_00_0.033s.dng'))
    assert line == './Fuji/short/10001_00_0.033s.dng ./Fuji/long/10001_00_10s.dng ISO%d F%g' % (
        iso, fnumber)


def test_fuji_raws_decode_as_x_t2_x_trans_with_fuji_levels(tiny_fuji):
    import rawpy
    with rawpy.imread(str(tiny_fuji / 'Fuji/long/00001_00_10s.dng')) as raw:
        xtrans.check_xtrans('long', raw)
        assert raw.raw_pattern.tolist() == [list(row) for row in xtrans.XTRANS_CFA]
        assert (raw.raw_type, raw.num_colors, raw.color_desc) == (rawpy.RawType.Flat, 3, b'RGBG')
        assert raw.black_level_per_channel == [1024] * 4 and raw.white_level == 16383
        visible = np.array(raw.raw_image_visible, copy=True)
        rgb = raw.postprocess(**GT_FLAGS)  # the ground truth's flags, at the smallest size
    assert visible.shape == (FUJI_HEIGHT, FUJI_WIDTH) and visible.min() >= 1024 - 5
    assert rgb.shape == (FUJI_HEIGHT, FUJI_WIDTH, 3) and rgb.dtype == np.uint16
    assert rgb.std() > 0.05 * 65535  # edges, gradients and textures survive the demosaic


def test_fuji_short_exposures_are_dark_by_the_ratio_and_noisy(tiny_fuji):
    import rawpy

    def packed(name):
        with rawpy.imread(str(tiny_fuji / name)) as raw:
            mosaic_ = np.array(raw.raw_image_visible, copy=True)
        return raw_io.normalize(xtrans.pack_xtrans(mosaic_), xtrans.FUJI_BLACK_LEVEL,
                                xtrans.FUJI_WHITE_LEVEL)

    long_ = packed('Fuji/long/00001_00_10s.dng')
    short = packed('Fuji/short/00001_00_0.04s.dng')
    assert long_.shape == (510 // 3, 516 // 3, 9) and long_.std() > 0.1
    assert short.mean() * 250 == pytest.approx(long_.mean(), rel=0.05)
    assert (short * 250 - long_).std() > 0.05
    assert not np.array_equal(short, packed('Fuji/short/00001_01_0.04s.dng'))


def test_libraw_demosaics_x_trans_only_from_the_minimum_size_on(tmp_path):
    import rawpy
    fuji = make_dataset.CAMERAS['fuji']
    side = make_dataset.XTRANS_MIN_SIDE
    for height, width, works in [(side, side, True), (side - 1, 4 * side, False),
                                 (4 * side, side - 1, False)]:
        path = str(tmp_path / ('%dx%d.dng' % (height, width)))
        make_dataset.write_dng(path, np.full((height, width), 3000, np.uint16), 100, 8.0, 10.0,
                               fuji)
        with rawpy.imread(path) as raw:
            assert raw.raw_image_visible.shape == (height, width)  # the mosaic always decodes
            if works:
                assert raw.postprocess(**GT_FLAGS).shape == (height, width, 3)
            else:
                with pytest.raises(rawpy.LibRawIOError):
                    raw.postprocess(**GT_FLAGS)


def test_fuji_same_seed_gives_identical_files(tmp_path):
    for name in ('a', 'b'):
        make_tiny_dataset(tmp_path / name, camera='fuji', height=FUJI_HEIGHT, width=FUJI_WIDTH,
                          n_train=1, n_test=0, n_val=0, bursts=1)
    files = all_files(tmp_path / 'a')
    assert len(files) == 2 + 3
    match, mismatch, errors = filecmp.cmpfiles(str(tmp_path / 'a'), str(tmp_path / 'b'), files,
                                               shallow=False)
    assert (len(match), mismatch, errors) == (len(files), [], [])


def test_fuji_sizes_below_the_x_trans_tile_fail_in_one_line(tmp_path):
    result = run_script('scripts/make_dataset.py', '--camera', 'fuji', '--data_dir', tmp_path,
                        '--list_dir', tmp_path, '--height', 511, '--width', 768)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --height/--width must be >= 512 (LibRaw's X-Trans demosaic tile), got 511x768"]
    assert not os.path.exists(str(tmp_path / 'Fuji'))


# sha256 of raws written by make_dataset.py before it had a camera option (same on numpy 1.18 /
# tifffile 2021.11 and numpy 2 / tifffile 2026): Sony generation must stay byte-identical.
SONY_SHA256_BEFORE_CAMERA_OPTION = {
    'Sony/long/00001_00_10s.dng':
        '6950787ee4bf0f9cd38b84f45f104007214f4e2ed89634fcc654cad3dbc432c9',
    'Sony/short/00001_00_0.04s.dng':
        '9e3163fe2c8ba692ccc873c912145cb14fbd28acfe9fe05c362baa59e1d3d528',
}


def test_sony_raws_are_byte_identical_to_before_the_camera_option(tmp_path):
    import hashlib
    make_tiny_dataset(tmp_path, height=96, width=136, n_train=1, n_test=0, n_val=0, bursts=1,
                      seed=0)
    for name, digest in SONY_SHA256_BEFORE_CAMERA_OPTION.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name


def test_lists_go_to_the_dataset_folder_never_over_the_official_ones(tmp_path):
    before = [official_lines(name) for name in OFFICIAL_LISTS]
    tiny = ['--height', 22, '--width', 22, '--train_scenes', 1, '--test_scenes', 1,
            '--val_scenes', 0, '--bursts', 1]
    result = run_script('scripts/make_dataset.py', '--data_dir', tmp_path / 'a', *tiny)
    assert result.returncode == 0, result.stderr
    assert sorted(n for n in os.listdir(str(tmp_path / 'a')) if n.endswith('.txt')) == sorted(
        make_dataset.LIST_NAMES.values())
    assert (tmp_path / 'a' / 'Sony_test_list.txt').read_text().startswith('./Sony/short/10001_00_')
    result = run_script('scripts/make_dataset.py', '--data_dir', tmp_path / 'b', '--list_dir', ROOT,
                        *tiny)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: %s: the project root holds the authors' official list files; write the lists of "
        "this dataset elsewhere (default: its data_dir)" % ROOT]
    assert not os.path.exists(str(tmp_path / 'b'))  # refused before any raw is written
    assert [official_lines(name) for name in OFFICIAL_LISTS] == before


# ---------------------------------------------------------------- natural scenes (--scenes=natural)

@pytest.fixture(scope='module')
def natural(tmp_path_factory):
    root = tmp_path_factory.mktemp('natural')
    make_tiny_dataset(root, scenes=make_dataset.NATURAL)
    return root


def description(path):
    import tifffile
    with tifffile.TiffFile(str(path)) as tif:
        return tif.pages[0].description


def fields(text):
    """The key=value words of a generated file's ImageDescription."""
    return dict(word.split('=', 1) for word in text.split() if '=' in word)


def test_natural_splits_never_share_a_photograph(natural):
    sources = [set(names) for names in make_dataset.PHOTOS.values()]
    assert sum(len(s) for s in sources) == len(set.union(*sources))  # disjoint by photograph
    for split, name in make_dataset.LIST_NAMES.items():
        pairs = sid_lists.read_list(str(natural / name), str(natural))
        assert {sid_lists.parse_name(p.short)[0] // 10000 for p in pairs} == {
            sid_lists.SPLITS[split]}
        for pair in pairs:
            photo = fields(description(pair.long))['photo']
            assert photo in make_dataset.PHOTOS[split]
            assert fields(description(pair.short))['photo'] == photo


def test_every_listed_photograph_ships_with_the_installed_packages():
    for names in make_dataset.PHOTOS.values():
        photos = make_dataset.load_photos(names)
        assert all(min(photo.size) >= 300 and photo.mode == 'RGB' for photo in photos.values())


def test_a_missing_photograph_is_a_one_line_error_before_anything_is_written(
        tmp_path, monkeypatch):
    monkeypatch.setitem(make_dataset.PHOTOS, 'test', ('skimage/no_such_photo.png',))
    with pytest.raises(cli.SidError) as error:
        make_tiny_dataset(tmp_path, scenes=make_dataset.NATURAL)
    assert str(error.value) == (
        '%s: source photograph not found (the installed skimage does not ship it; '
        '--scenes=shapes needs none)' % make_dataset.photo_path('skimage/no_such_photo.png'))
    assert os.listdir(str(tmp_path)) == []


def test_natural_long_exposures_are_a7s2_raws_that_develop_into_the_photo(natural):
    import rawpy
    path = natural / 'Sony/long/10001_00_10s.dng'
    scene = fields(description(path))
    gains = float(scene['gains'].split(',')[0]), float(scene['gains'].split(',')[2])
    with rawpy.imread(str(path)) as raw:
        assert raw.black_level_per_channel == [512] * 4 and raw.white_level == 16383
        assert np.allclose(raw.rgb_xyz_matrix[:3], unprocess.SONY_A7S2_XYZ_TO_CAMERA)
        assert raw.camera_whitebalance[:3] == pytest.approx([gains[0], 1, gains[1]], rel=1e-3)
        counts = raw.raw_image_visible.astype(np.float64)
    assert counts.min() >= 512 and counts.std() > 100  # a clean picture, no read noise
    gt = raw_io.read_ground_truth(str(path))
    assert gt.shape == (96, 136, 3) and gt.std() > 0.05
    iso, _, exposure = raw_io.read_exif(str(path))
    assert iso in make_dataset.ISO_CHOICES and exposure == 10.0  # the pair's ISO, as in SID


def test_natural_short_exposures_carry_the_calibrated_noise_of_their_iso(natural):
    long_path = natural / 'Sony/long/00001_00_10s.dng'
    long_ = raw_io.read_bayer(str(long_path))[0].astype(np.float64) - 512
    for burst in (0, 1):
        path = natural / ('Sony/short/00001_%02d_0.04s.dng' % burst)
        iso = raw_io.read_exif(str(path))[0]
        noise = fields(description(path))
        assert float(noise['K']) == pytest.approx(
            noise_model.system_gain(noise_model.SONY_A7S2, iso), rel=1e-3)
        short = raw_io.read_bayer(str(path))[0].astype(np.float64) - 512
        residual = short - long_ / 250
        # shot + read + row noise around the expected counts; the colour bias moves the mean
        assert residual.std() > np.sqrt(float(noise['K']) * max(long_.mean() / 250, 1)) * 0.8
        assert abs(residual.mean()) < 5
    assert not np.array_equal(*[raw_io.read_bayer(str(natural / (
        'Sony/short/00001_%02d_0.04s.dng' % b)))[0] for b in (0, 1)])


def test_natural_scenes_are_deterministic_for_a_seed(tmp_path):
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        make_tiny_dataset(tmp_path / name, scenes=make_dataset.NATURAL, n_train=1, n_test=1,
                          n_val=0, bursts=1, seed=seed)
    files = all_files(tmp_path / 'a')
    match, mismatch, errors = filecmp.cmpfiles(str(tmp_path / 'a'), str(tmp_path / 'b'), files,
                                               shallow=False)
    assert (len(match), mismatch, errors) == (len(files), [], [])
    raw = 'Sony/short/00001_00_0.04s.dng'
    assert not filecmp.cmp(str(tmp_path / 'a' / raw), str(tmp_path / 'c' / raw), shallow=False)


TINY_CLI = ['--height', 96, '--width', 136, '--train_scenes', 1, '--test_scenes', 1,
            '--val_scenes', 0, '--bursts', 1]


def test_the_command_makes_natural_sony_scenes_by_default_and_shapes_on_request(tmp_path):
    result = run_script('scripts/make_dataset.py', '--data_dir', tmp_path / 'a', *TINY_CLI)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        'wrote %s (natural scenes): 1 train pairs, 1 test pairs, 0 val pairs'
        % (tmp_path / 'a' / 'Sony')]
    assert fields(description(tmp_path / 'a/Sony/long/10001_00_10s.dng'))['photo'] in \
        make_dataset.PHOTOS['test']
    result = run_script('scripts/make_dataset.py', '--data_dir', tmp_path / 'b', '--scenes=shapes',
                        *TINY_CLI)
    assert result.returncode == 0, result.stderr
    make_tiny_dataset(tmp_path / 'c', n_train=1, n_test=1, n_val=0, bursts=1)
    files = all_files(tmp_path / 'c')
    assert filecmp.cmpfiles(str(tmp_path / 'b'), str(tmp_path / 'c'), files,
                            shallow=False)[0] == files


@pytest.mark.parametrize('args, message', [
    (['--camera=fuji', '--scenes=natural', '--height', 512, '--width', 520],
     "no calibrated noise model for --camera=fuji: ELD's calibration here is the Sony A7S II's "
     "(--camera=sony); use --scenes=shapes"),
    (['--isos=800,12800'], 'ISO 12800 is outside the Sony A7S II (ELD SonyA7S2) noise '
                           'calibration (ISOs 100 to 6400)'),
    (['--ratios=100,50'], 'ratio 50 is outside the Sony A7S II (ELD SonyA7S2) noise calibration '
                          '(ratios 100 to 300)'),
    (['--ratios=100,400', '--scenes=shapes'], "--ratios: 400 is not above 1 and at most the "
                                              "paper's cap 300"),
    (['--isos=100,high'], '--isos: not a number list: 100,high'),
])
def test_settings_outside_the_calibration_fail_in_one_line_and_write_nothing(tmp_path, args,
                                                                             message):
    result = run_script('scripts/make_dataset.py', '--data_dir', tmp_path / 'd', *(TINY_CLI + args))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ['error: ' + message]
    assert not os.path.exists(str(tmp_path / 'd'))
