"""Fuji X-Trans (the paper's X-T2): the CFA check and the authors' 9-channel packing.

The paper's second camera. Its 6x6 X-Trans CFA is packed, as the authors' Fuji code packs it,
into 9 channels at a third of the resolution (one packed pixel per 3x3 raw cell), so the Fuji
U-Net ends in depth_to_space with a block of 3. The channels' meaning depends on the CFA phase,
hence the check against the X-T2's phase below.
"""
import numpy as np

from cli import SidError

FUJI_BLACK_LEVEL = 1024
FUJI_WHITE_LEVEL = 16383
XTRANS_PERIOD = 6  # the CFA repeats every 6 x 6 sites: packing crops H and W down to a multiple
XTRANS_BLOCK = 3  # a packed pixel covers 3 x 3 raw sites
# The X-T2's CFA (0 R, 1 G, 2 B) with its 6x6 tile at the top-left of raw_image_visible.
XTRANS_CFA = ((0, 2, 1, 2, 0, 1),
              (1, 1, 0, 1, 1, 2),
              (1, 1, 2, 1, 1, 0),
              (2, 0, 1, 0, 2, 1),
              (1, 1, 2, 1, 1, 0),
              (1, 1, 0, 1, 1, 2))
# Channels 0-4: the sites (row, col) inside each 6x6 tile that packed pixels (2i, 2j), (2i, 2j+1),
# (2i+1, 2j), (2i+1, 2j+1) take from tile (i, j). Colours: R, G, B, R, B.
XTRANS_TILE_SITES = (((0, 0), (0, 4), (3, 1), (3, 3)),
                     ((0, 2), (0, 5), (3, 2), (3, 5)),
                     ((0, 1), (0, 3), (3, 0), (3, 4)),
                     ((1, 2), (2, 5), (5, 2), (4, 5)),
                     ((2, 2), (1, 5), (4, 2), (5, 5)))
XTRANS_QUADRANTS = ((0, 0), (0, 1), (1, 0), (1, 1))
# Channels 5-8: the four greens at (row, col) of every 3x3 cell, one per packed pixel.
XTRANS_CELL_SITES = ((1, 0), (1, 1), (2, 0), (2, 1))
CHANNELS = len(XTRANS_TILE_SITES) + len(XTRANS_CELL_SITES)


def check_xtrans(path, raw):
    """Refuse a raw whose CFA is not the X-T2's X-Trans in the phase pack_xtrans assumes.

    An X-Trans raw is one whose rawpy raw_pattern is 6x6 (Bayer raws report 2x2).
    """
    colors = raw.color_desc.decode('ascii', 'replace')
    pattern = raw.raw_pattern
    if raw.num_colors != 3 or pattern is None or pattern.shape != (XTRANS_PERIOD,) * 2:
        raise SidError('%s: not a 6x6 X-Trans raw (colors %s, CFA pattern %s)'
                       % (path, colors, 'none' if pattern is None else
                          'x'.join(map(str, pattern.shape))))
    found = '/'.join(''.join(colors[c] for c in row) for row in pattern)
    expected = '/'.join(''.join('RGB'[c] for c in row) for row in XTRANS_CFA)
    if found != expected:
        raise SidError('%s: X-Trans CFA is %s, expected the X-T2 phase %s that the 9-channel '
                       'packing assumes' % (path, found, expected))


def pack_xtrans(raw):
    """[H, W] X-T2 mosaic -> [H/3, W/3, 9] after cropping H, W down to multiples of 6 (same dtype).

    The authors' Fuji packing: channels 0-4 take the R, G, B, R, B sites of XTRANS_TILE_SITES
    (four per 6x6 tile, arranged 2x2), channels 5-8 the four greens of every 3x3 cell.
    """
    height = raw.shape[0] // XTRANS_PERIOD * XTRANS_PERIOD
    width = raw.shape[1] // XTRANS_PERIOD * XTRANS_PERIOD
    raw = raw[:height, :width]
    out = np.empty((height // XTRANS_BLOCK, width // XTRANS_BLOCK, CHANNELS), dtype=raw.dtype)
    for c, sites in enumerate(XTRANS_TILE_SITES):
        for (a, b), (y, x) in zip(XTRANS_QUADRANTS, sites):
            out[a::2, b::2, c] = raw[y::XTRANS_PERIOD, x::XTRANS_PERIOD]
    for c, (y, x) in enumerate(XTRANS_CELL_SITES, len(XTRANS_TILE_SITES)):
        out[..., c] = raw[y::XTRANS_BLOCK, x::XTRANS_BLOCK]
    return out


def align_xtrans(mosaic, phase):
    """The mosaic extended at the bottom and right to multiples of 6, so that packing crops none
    of its pixels: [ceil6(H), ceil6(W)], original pixel (0, 0) at (0, 0).

    Each added row (column) repeats the one 6 before it, the same colours in the X-Trans repeat
    (reflection would not keep them). The enhance command uses this; the paper's train and test
    path crops instead (pack_xtrans).
    """
    if tuple(phase) != (0, 0):
        raise ValueError('X-Trans mosaics are read in the X-T2 phase only, got phase %s'
                         % (phase,))
    rows, cols = (np.arange(-(-n // XTRANS_PERIOD) * XTRANS_PERIOD) for n in mosaic.shape)
    rows[mosaic.shape[0]:] -= XTRANS_PERIOD
    cols[mosaic.shape[1]:] -= XTRANS_PERIOD
    if len(rows) == mosaic.shape[0] and len(cols) == mosaic.shape[1]:
        return mosaic
    return mosaic[np.ix_(rows, cols)]
