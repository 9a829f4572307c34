"""Generate a small SID-layout Sony dataset of DNG raws, for tests and the offline demo.

The real SID data (25 GB) is not always at hand. These files go through exactly the same rawpy path
as real ARWs (LibRaw reads them with its DNG loader rather than its Sony decoder): RGGB, black 512,
white 16383, SID file names (exposure parsed from the name), EXIF ISO / F-number / exposure time,
and the three list files. Scenes have edges, colour gradients and textures; short exposures carry
Poisson shot noise and Gaussian read noise at the paper's ratios 100, 250 and 300.

    python3 scripts/make_dataset.py --data_dir=dataset --height=2848 --width=4256   # full size
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sid_io  # noqa: E402

LONG_EXPOSURE = 10.0  # seconds, as most SID long exposures
# Short exposures giving the Sony set's three ratios: 10/0.1=100, 10/0.04=250, 10/0.033 -> 300.
SHORT_EXPOSURES = (0.1, 0.04, 0.033)
ISO_CHOICES = (100, 200, 400, 800, 1600, 3200)
F_CHOICES = (2.8, 4.0, 5.6, 8.0, 11.0)
LONG_FILL = 0.85  # brightest scene value maps to this fraction of the raw range
READ_NOISE_DN = 3.0
# XYZ(D65) -> linear sRGB: written as the DNG ColorMatrix1 so the "camera" space is linear sRGB
# and postprocess gives predictable colour (see shared/docs/synthetic_raw_dng.md).
XYZ_TO_SRGB = ((3.2404542, -1.5371385, -0.4985314),
               (-0.9692660, 1.8760108, 0.0415560),
               (0.0556434, -0.2040259, 1.0572252))
MATRIX_DENOMINATOR = 10000
PHOTOMETRIC_CFA, PHOTOMETRIC_LINEAR_RAW = 32803, 34892  # DNG: mosaic / demosaiced linear data
CFA_COLORS = 'RGBCMY'  # CFAPattern values 0-5
LIST_NAMES = {'train': 'Sony_train_list.txt', 'test': 'Sony_test_list.txt',
              'val': 'Sony_val_list.txt'}


def _rational(x, denominator=1000):
    return int(round(x * denominator)), denominator


def write_dng(path, bayer, iso, fnumber, exposure, cfa='RGGB', black=sid_io.BLACK_LEVEL,
              white=sid_io.WHITE_LEVEL, orientation=None, photometric=PHOTOMETRIC_CFA):
    """An uncompressed DNG that LibRaw decodes like a Sony A7S II raw (RGGB, levels 512/16383).

    Other cameras for the tests of scripts/enhance.py: `cfa` the colour filter's repeat row by row
    from the top-left, 2x2 ('BGGR') or 6x6 (X-Trans, 36 letters), None for no colour filter (a
    monochrome sensor), `black` one level or four in the order of a 2x2 cell
    order (BlackLevelRepeatDim 2x2), `white` the saturation level, `orientation` the EXIF
    orientation (1-8), `photometric` PHOTOMETRIC_LINEAR_RAW for [H, W, 3] already demosaiced data.
    """
    import tifffile
    matrix = []
    for row in XYZ_TO_SRGB:
        for v in row:
            matrix += [int(round(v * MATRIX_DENOMINATOR)), MATRIX_DENOMINATOR]
    blacks = tuple(black) if np.ndim(black) else (black,)
    tags = [
        (254, 4, 1, 0, True),                        # NewSubfileType: main image
        (271, 2, 0, 'Sony', True),                   # Make
        (272, 2, 0, 'ILCE-7SM2', True),              # Model
        (33434, 5, 1, _rational(exposure, 100000), True),   # ExposureTime
        (33437, 5, 1, _rational(fnumber, 10), True),        # FNumber
        (34855, 3, 1, int(iso), True),               # ISOSpeedRatings
        (50706, 1, 4, (1, 4, 0, 0), True),           # DNGVersion
        (50707, 1, 4, (1, 1, 0, 0), True),           # DNGBackwardVersion
        (50708, 2, 0, 'Sony ILCE-7SM2 (generated)', True),  # UniqueCameraModel
        (50713, 3, 2, (2, 2) if len(blacks) == 4 else (1, 1), True),  # BlackLevelRepeatDim
        (50714, 4, len(blacks), blacks if len(blacks) > 1 else blacks[0], True),  # BlackLevel
        (50717, 4, 1, int(white), True),             # WhiteLevel
        (50721, 10, 9, tuple(matrix), True),         # ColorMatrix1
        (50728, 5, 3, (1, 1, 1, 1, 1, 1), True),     # AsShotNeutral: no white-balance change
        (50778, 3, 1, 21, True),                     # CalibrationIlluminant1: D65
    ]
    if cfa is not None:
        side = int(round(len(cfa) ** 0.5))
        pattern = tuple(CFA_COLORS.index(c) for c in cfa)
        planes = tuple(sorted(set(pattern)))
        tags += [(33421, 3, 2, (side, side), True),  # CFARepeatPatternDim
                 (33422, 1, len(cfa), pattern, True),  # CFAPattern
                 (50710, 1, len(planes), planes, True),  # CFAPlaneColor
                 (50711, 3, 1, 1, True)]             # CFALayout: rectangular
    if orientation is not None:
        tags.append((274, 3, 1, int(orientation), True))  # Orientation
    with sid_io.atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp) as tif:
            tif.write(bayer, photometric=photometric, compression=None, metadata=None,
                      software=False, extratags=sorted(tags))


def make_scene(rng, height, width):
    """A linear-RGB scene in [0, 1]: colour gradient, bright and dark shapes, stripes, checkers."""
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    corners = rng.uniform(0.05, 0.6, size=(3, 3)).astype(np.float32)
    scene = corners[0] + (corners[1] - corners[0]) * xx + (corners[2] - corners[0]) * yy
    scene = np.broadcast_to(scene, (height, width, 3)).copy()
    for _ in range(int(rng.integers(6, 12))):
        h = int(rng.integers(max(2, height // 10), max(3, height // 3)))
        w = int(rng.integers(max(2, width // 10), max(3, width // 3)))
        y0 = int(rng.integers(0, height - h + 1))
        x0 = int(rng.integers(0, width - w + 1))
        color = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        region = scene[y0:y0 + h, x0:x0 + w]
        kind = rng.integers(0, 4)
        if kind == 0:      # solid rectangle: hard edges
            region[...] = color
        elif kind == 1:    # disc: curved edges
            cy, cx = np.ogrid[:h, :w]
            inside = ((cy - h / 2.0) / (h / 2.0)) ** 2 + ((cx - w / 2.0) / (w / 2.0)) ** 2 <= 1
            region[inside] = color
        elif kind == 2:    # oriented sinusoidal stripes: fine texture
            angle = rng.uniform(0, np.pi)
            period = rng.uniform(3.0, 16.0)
            cy, cx = np.ogrid[:h, :w]
            phase = (np.cos(angle) * cx + np.sin(angle) * cy) * (2 * np.pi / period)
            region[...] = color * (0.5 + 0.5 * np.sin(phase))[..., None].astype(np.float32)
        else:              # checkerboard
            cell = int(rng.integers(2, 9))
            cy, cx = np.ogrid[:h, :w]
            checks = ((cy // cell + cx // cell) % 2).astype(np.float32)
            region[...] = color * (0.2 + 0.8 * checks)[..., None]
    return np.clip(scene, 0.0, 1.0)


def mosaic(scene):
    """Sample an [H, W, 3] image on the RGGB pattern -> [H, W]."""
    channel = ((0, 1), (1, 2))  # R G / G B
    out = np.empty(scene.shape[:2], dtype=scene.dtype)
    for y in (0, 1):
        for x in (0, 1):
            out[y::2, x::2] = scene[y::2, x::2, channel[y][x]]
    return out


def long_exposure(rng, scene):
    """Clean ground-truth raw counts (uint16) of a linear scene."""
    signal = mosaic(scene) * (LONG_FILL * (sid_io.WHITE_LEVEL - sid_io.BLACK_LEVEL))
    counts = sid_io.BLACK_LEVEL + signal + rng.normal(0.0, 1.0, size=signal.shape)
    return np.clip(np.round(counts), 0, sid_io.WHITE_LEVEL).astype(np.uint16)


def short_exposure(rng, long_raw, ratio, iso):
    """Raw counts of a `ratio`-times shorter exposure: shot noise (gain grows with ISO) + read noise."""
    signal = (long_raw.astype(np.float32) - sid_io.BLACK_LEVEL).clip(0) / ratio
    gain = iso / 400.0  # DN per electron: higher ISO, fewer electrons per count, more noise
    electrons = rng.poisson(signal / gain)
    counts = sid_io.BLACK_LEVEL + electrons * gain + rng.normal(0.0, READ_NOISE_DN, signal.shape)
    return np.clip(np.round(counts), 0, sid_io.WHITE_LEVEL).astype(np.uint16)


def scene_ids(split, count):
    first = sid_io.SPLITS[split] * 10000
    return [first + i + 1 for i in range(count)]


def generate(data_dir, height, width, n_train, n_test, n_val, bursts, seed, list_dir):
    """Write the raws and list files; returns {split: [list lines]}."""
    if height % 2 or width % 2 or height < 22 or width < 22:
        raise sid_io.SidError('--height/--width must be even and >= 22 (LibRaw minimum), got %dx%d'
                              % (height, width))
    lines = {}
    for split, count in (('train', n_train), ('test', n_test), ('val', n_val)):
        lines[split] = []
        for sid in scene_ids(split, count):
            rng = np.random.default_rng([seed, sid])
            scene = make_scene(rng, height, width)
            long_raw = long_exposure(rng, scene)
            long_rel = './Sony/long/%05d_00_%gs.dng' % (sid, LONG_EXPOSURE)
            fnumber = float(rng.choice(F_CHOICES))
            write_dng(os.path.join(data_dir, long_rel), long_raw, 100, fnumber, LONG_EXPOSURE)
            short_time = SHORT_EXPOSURES[sid % len(SHORT_EXPOSURES)]
            iso = int(rng.choice(ISO_CHOICES))
            for burst in range(bursts):
                short_rel = './Sony/short/%05d_%02d_%gs.dng' % (sid, burst, short_time)
                ratio = sid_io.exposure_ratio(short_rel, long_rel)
                raw = short_exposure(rng, long_raw, ratio, iso)
                write_dng(os.path.join(data_dir, short_rel), raw, iso, fnumber, short_time)
                lines[split].append(sid_io.format_list_line(short_rel, long_rel, iso, fnumber))
        sid_io.write_list(lines[split], os.path.join(list_dir, LIST_NAMES[split]))
    return lines


def define_flags():
    from absl import flags
    flags.DEFINE_string('data_dir', 'dataset', 'dataset root; raws go to <data_dir>/Sony/{short,long}')
    flags.DEFINE_string('list_dir', '.', 'where Sony_{train,test,val}_list.txt are written')
    flags.DEFINE_integer('height', 512, 'raw height in pixels (even; the real Sony size is 2848)')
    flags.DEFINE_integer('width', 768, 'raw width in pixels (even; the real Sony size is 4256)')
    flags.DEFINE_integer('train_scenes', 8, 'number of training scenes (ids 0xxxx)')
    flags.DEFINE_integer('test_scenes', 3, 'number of test scenes (ids 1xxxx)')
    flags.DEFINE_integer('val_scenes', 2, 'number of validation scenes (ids 2xxxx)')
    flags.DEFINE_integer('bursts', 2, 'short-exposure burst frames per scene')
    flags.DEFINE_integer('seed', 0, 'random seed: the same seed gives byte-identical files')


@sid_io.fail_cleanly
def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    lines = generate(f.data_dir, f.height, f.width, f.train_scenes, f.test_scenes, f.val_scenes,
                     f.bursts, f.seed, f.list_dir)
    print('wrote %s: %s' % (os.path.join(f.data_dir, 'Sony'),
                            ', '.join('%d %s pairs' % (len(v), k) for k, v in lines.items())))


if __name__ == '__main__':
    from absl import app
    define_flags()
    app.run(main)
