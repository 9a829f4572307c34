"""xtrans (and raw_io's X-Trans reading): pack_xtrans on generated X-T2 raws decoded through
rawpy, the whole-repeat extension of the enhance command, and the X-Trans kinds of the
decoded-raw cache."""
import numpy as np
import pytest

import cli
import make_dataset
import raw_cache
import raw_io
import xtrans

FUJI = make_dataset.CAMERAS['fuji']
# The facts, written out independently of xtrans.py: the X-T2 CFA row by row, and for each of the
# packed channels 0-4 the raw sites (row, col inside 6x6 tile (i, j)) of packed pixels
# (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1); channels 5-8 take rows 1, 1, 2, 2 and
# columns 0, 1, 0, 1 (mod 3).
X_T2_CFA = 'RBGBRG/GGRGGB/GGBGGR/BRGRBG/GGBGGR/GGRGGB'
TILE_SITES = ['(0,0) (0,4) (3,1) (3,3)', '(0,2) (0,5) (3,2) (3,5)', '(0,1) (0,3) (3,0) (3,4)',
              '(1,2) (2,5) (5,2) (4,5)', '(2,2) (1,5) (4,2) (5,5)']
CELL_ROWS, CELL_COLS = (1, 1, 2, 2), (0, 1, 0, 1)
# Not multiples of 6 (like the X-T2's 6032 columns), so packing has to crop; raw_image_visible
# decodes at any size LibRaw accepts (only postprocess needs XTRANS_MIN_SIDE).
HEIGHT, WIDTH = 46, 58


def expected_pack(raw):
    """The facts' packing, site by site."""
    h, w = raw.shape[0] // 6 * 6, raw.shape[1] // 6 * 6
    out = np.zeros((h // 3, w // 3, 9), raw.dtype)
    for c, text in enumerate(TILE_SITES):
        sites = [tuple(int(v) for v in s.strip('()').split(',')) for s in text.split()]
        for p in range(h // 3):
            for q in range(w // 3):
                (i, a), (j, b) = divmod(p, 2), divmod(q, 2)
                dy, dx = sites[2 * a + b]
                out[p, q, c] = raw[6 * i + dy, 6 * j + dx]
    for c, (r, s) in enumerate(zip(CELL_ROWS, CELL_COLS), 5):
        for p in range(h // 3):
            for q in range(w // 3):
                out[p, q, c] = raw[3 * p + r, 3 * q + s]
    return out


def write_and_decode(path, raw, camera=FUJI):
    """Write a generated X-Trans DNG and read back (raw_image_visible, raw_colors_visible)."""
    import rawpy
    make_dataset.write_dng(str(path), raw, 200, 5.6, 0.1, camera)
    with rawpy.imread(str(path)) as decoded:
        return (np.array(decoded.raw_image_visible, copy=True),
                np.array(decoded.raw_colors_visible, copy=True))


def test_the_cfa_constant_is_the_x_t2_phase_of_the_facts():
    assert '/'.join(''.join('RGB'[c] for c in row) for row in xtrans.XTRANS_CFA) == X_T2_CFA


def test_packing_a_generated_raw_equals_the_formula(tmp_path):
    # Distinct values everywhere, so any wrong site shows up.
    raw = (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) * 5 + 1024).astype(np.uint16)
    visible, _ = write_and_decode(tmp_path / 'x.dng', raw)
    np.testing.assert_array_equal(visible, raw)
    packed = xtrans.pack_xtrans(visible)
    assert packed.shape == (42 // 3, 54 // 3, 9) and packed.dtype == np.uint16
    np.testing.assert_array_equal(packed, expected_pack(raw))
    # Each site of the cropped raw lands in exactly one channel: packing is a permutation.
    np.testing.assert_array_equal(np.sort(packed, axis=None), np.sort(raw[:42, :54], axis=None))


def test_channels_take_the_colours_the_table_implies(tmp_path):
    raw = np.random.default_rng(0).integers(1024, 16383, (HEIGHT, WIDTH)).astype(np.uint16)
    _, colors = write_and_decode(tmp_path / 'x.dng', raw)
    rows = X_T2_CFA.split('/')
    expected_colors = np.array([['RGB'.index(rows[y % 6][x % 6]) for x in range(WIDTH)]
                                for y in range(HEIGHT)])
    np.testing.assert_array_equal(colors, expected_colors)  # LibRaw sees the X-T2 phase
    packed_colors = xtrans.pack_xtrans(colors)
    per_channel = [np.unique(packed_colors[..., c]).tolist() for c in range(9)]
    # R G B R B, then the four greens of every 3x3 cell.
    assert per_channel == [[0], [1], [2], [0], [2], [1], [1], [1], [1]]


def test_fuji_levels_normalise_black_to_zero_and_white_to_one():
    assert (xtrans.FUJI_BLACK_LEVEL, xtrans.FUJI_WHITE_LEVEL) == (1024, 16383)
    counts = np.array([0, 1024, 1024 + 15359 // 2, 16383], np.uint16)
    x = raw_io.normalize(counts, xtrans.FUJI_BLACK_LEVEL, xtrans.FUJI_WHITE_LEVEL)
    np.testing.assert_allclose(x, [0, 0, (15359 // 2) / 15359.0, 1], rtol=1e-6)


def test_check_xtrans_accepts_the_x_t2_and_refuses_bayer_or_another_phase(tmp_path):
    import rawpy
    raw = np.full((HEIGHT, WIDTH), 2000, np.uint16)
    shifted = FUJI._replace(cfa=tuple(row[1:] + row[:1] for row in xtrans.XTRANS_CFA))
    files = {'xt2': FUJI, 'shifted': shifted, 'bayer': make_dataset.CAMERAS['sony']}
    for name, camera in files.items():
        make_dataset.write_dng(str(tmp_path / (name + '.dng')), raw, 200, 5.6, 0.1, camera)
    with rawpy.imread(str(tmp_path / 'xt2.dng')) as decoded:
        xtrans.check_xtrans('xt2.dng', decoded)
        assert decoded.raw_pattern.shape == (6, 6) and decoded.num_colors == 3
        with pytest.raises(cli.SidError, match='X-Trans sensor: needs a Fuji model'):
            raw_io._check_bayer('xt2.dng', decoded)  # the Sony path refuses X-Trans
    with rawpy.imread(str(tmp_path / 'shifted.dng')) as decoded:
        with pytest.raises(cli.SidError) as error:
            xtrans.check_xtrans('shifted.dng', decoded)
    assert str(error.value) == (
        'shifted.dng: X-Trans CFA is BGBRGR/GRGGBG/GBGGRG/RGRBGB/GBGGRG/GRGGBG, expected the '
        'X-T2 phase %s that the 9-channel packing assumes' % X_T2_CFA)
    with rawpy.imread(str(tmp_path / 'bayer.dng')) as decoded:
        with pytest.raises(cli.SidError, match=r'^bayer.dng: not a 6x6 X-Trans raw '
                           r'\(colors RGBG, CFA pattern 2x2\)$'):
            xtrans.check_xtrans('bayer.dng', decoded)


def test_extending_to_whole_repeats_keeps_every_sites_colour():
    colors = np.array([[xtrans.XTRANS_CFA[y % 6][x % 6] for x in range(WIDTH)]
                       for y in range(HEIGHT)])
    extended = xtrans.align_xtrans(colors, (0, 0))
    assert extended.shape == (48, 60)  # 46 x 58 up to multiples of 6
    np.testing.assert_array_equal(extended[:HEIGHT, :WIDTH], colors)
    np.testing.assert_array_equal(extended, np.tile(xtrans.XTRANS_CFA, (8, 10)))
    np.testing.assert_array_equal(xtrans.align_xtrans(colors[:42, :54], (0, 0)), colors[:42, :54])


def test_cache_kinds_of_an_x_trans_pair_hold_the_authors_arrays(tiny_fuji_dataset, tmp_path):
    data = str(tiny_fuji_dataset)
    short = str(tiny_fuji_dataset / 'Fuji/short/00001_00_0.04s.dng')
    long_ = str(tiny_fuji_dataset / 'Fuji/long/00001_00_10s.dng')
    input_kind, gt_kind = raw_io.PACKINGS['xtrans'].cache_kinds
    entries = raw_cache.build_cache([(short, input_kind), (long_, gt_kind)], str(tmp_path), data,
                                    workers=1, progress=False)
    packed = raw_cache.open_cached(entries[(short, input_kind)])
    rgb = raw_cache.open_cached(entries[(long_, gt_kind)])
    assert '.xtrans_input.v' in entries[(short, input_kind)]  # never a Bayer entry's name
    assert packed.shape == (170, 172, 9) and rgb.shape == (510, 516, 3)  # 3x the packed size
    np.testing.assert_array_equal(packed, raw_io.read_packed(short, 'xtrans'))
    np.testing.assert_array_equal(rgb, raw_io.postprocess(long_, 'xtrans')[:510, :516])
    assert raw_cache.cache_entry_problem(entries[(long_, gt_kind)], gt_kind) is None
    with pytest.raises(cli.SidError, match='X-Trans sensor: needs a Fuji model'):
        raw_cache.build_cache([(short, 'input')], str(tmp_path), data, workers=1, progress=False)
