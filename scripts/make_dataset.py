"""Generate a small SID-layout Sony or Fuji dataset of DNG raws, for the offline demo and tests.

The real SID data (25 GB for Sony alone) is not always at hand. These files go through exactly
the same rawpy path as real ARWs / RAFs (LibRaw reads them with its DNG loader rather than its
Sony or Fuji decoder): the camera's CFA (Sony RGGB, black 512; Fuji X-T2 X-Trans 6x6 in the phase
the 9-channel packing assumes, black 1024; white 16383 for both), SID file names (exposure parsed
from the name), EXIF ISO / F-number / exposure time, and the three list files (in the dataset
folder: the authors' lists in the project root stay as they are). Two kinds of scenes:

  natural  (Sony, the default there) crops of photographs that installed packages ship, each
           photograph in one split only, unprocessed to A7S II raw (unprocess.py, Brooks et al.
           2019); short exposures carry ELD's calibrated A7S II noise (noise_model.py)
  shapes   (any camera; the default for fuji and bayer) edges, colour gradients, stripes and
           checkerboards; Poisson shot noise and Gaussian read noise. Tiny and fast, for tests.

    python3 scripts/make_dataset.py                                                  # natural
    python3 scripts/make_dataset.py --scenes=shapes --height=2848 --width=4256      # full size
    python3 scripts/make_dataset.py --camera=fuji --height=4032 --width=6032        # full size
"""
import functools
import os
import sys
from collections import namedtuple

import numpy as np

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
import cli
import noise_model
import raw_io
import safe_files
import sid_lists
import unprocess
import xtrans

LONG_EXPOSURE = 10.0  # seconds, as most SID long exposures
# The Sony set's ratios. A short exposure is LONG_EXPOSURE / ratio rounded to two digits, like
# SID's names: 10/0.1 = 100, 10/0.04 = 250, 10/0.033 -> 300 (the paper's cap).
SID_RATIOS = (100, 250, 300)
EXPOSURE_DIGITS = '%.2g'
ISO_CHOICES = (100, 200, 400, 800, 1600, 3200)
F_CHOICES = (2.8, 4.0, 5.6, 8.0, 11.0)
LONG_FILL = 0.85  # brightest scene value maps to this fraction of the raw range
READ_NOISE_DN = 3.0
# XYZ(D65) -> linear sRGB: written as the DNG ColorMatrix1 so the "camera" space is linear sRGB
# and postprocess gives predictable colour (with AsShotNeutral 1,1,1 and gamma (1, 1) it returns
# (raw - black) / (white - black) * 65535 to +-1 per channel).
XYZ_TO_SRGB = ((3.2404542, -1.5371385, -0.4985314),
               (-0.9692660, 1.8760108, 0.0415560),
               (0.0556434, -0.2040259, 1.0572252))
MATRIX_DENOMINATOR = 10000
NEUTRAL_DENOMINATOR = 1000000
PHOTOMETRIC_CFA, PHOTOMETRIC_LINEAR_RAW = 32803, 34892  # DNG: mosaic / demosaiced linear data
CFA_COLORS = 'RGBCMY'  # CFAPattern values 0-5
FROM_CAMERA = 'camera'  # write_dng's default cfa: the camera's own pattern
LIST_NAMES = {'train': 'Sony_train_list.txt', 'test': 'Sony_test_list.txt',
              'val': 'Sony_val_list.txt'}
FUJI_LIST_NAMES = {split: name.replace('Sony', 'Fuji') for split, name in LIST_NAMES.items()}
BAYER_LIST_NAMES = {split: name.replace('Sony', 'Bayer') for split, name in LIST_NAMES.items()}
BAYER_MIN_SIDE = 22  # LibRaw rejects smaller images
# LibRaw's X-Trans demosaic (Markesteijn, run by postprocess for the ground truth) works on
# 512 x 512 tiles and refuses an image narrower or lower than one tile with an I/O error;
# raw_image_visible alone would still decode. So generated X-Trans raws are at least this big.
XTRANS_MIN_SIDE = 512

# What the generator needs to know about a camera: where its files go, its CFA (colour index per
# site of one repeat tile: 0 R, 1 G, 2 B), levels (black: one, or four for the sites of a 2x2
# cell), EXIF make / model, list names and the sizes LibRaw decodes (Bayer packing also needs even
# sides; X-Trans packing crops to multiples of 6). 'bayer' is some other camera, for
# train_Sony.py --camera=bayer: 12-bit, GRBG, a black level per site.
Camera = namedtuple('Camera', 'folder cfa black white make model list_names '
                              'min_side side_multiple size_reason')
CAMERAS = {
    'sony': Camera('Sony', ((0, 1), (1, 2)), raw_io.BLACK_LEVEL, raw_io.WHITE_LEVEL,
                   'Sony', 'ILCE-7SM2', LIST_NAMES, BAYER_MIN_SIDE, 2, 'LibRaw minimum'),
    'fuji': Camera('Fuji', xtrans.XTRANS_CFA, xtrans.FUJI_BLACK_LEVEL, xtrans.FUJI_WHITE_LEVEL,
                   'FUJIFILM', 'X-T2', FUJI_LIST_NAMES, XTRANS_MIN_SIDE, 1,
                   "LibRaw's X-Trans demosaic tile"),
    'bayer': Camera('Bayer', ((1, 0), (2, 1)), (600, 601, 602, 603), 4095, 'Generic',
                    '12-bit GRBG', BAYER_LIST_NAMES, BAYER_MIN_SIDE, 2, 'LibRaw minimum'),
}


def list_paths(list_dir, names=LIST_NAMES):
    """{split: list path} in list_dir, which must not be the project root (the authors' lists)."""
    if os.path.realpath(list_dir) == os.path.realpath(PROJECT_ROOT):
        raise cli.SidError('%s: the project root holds the authors\' official list files; write '
                           'the lists of this dataset elsewhere (default: its data_dir)'
                           % list_dir)
    return {split: os.path.join(list_dir, name) for split, name in names.items()}


def _rational(x, denominator=1000):
    return int(round(x * denominator)), denominator


def _neutral(values):
    """AsShotNeutral as three rationals; whole numbers as n/1 (the generated files' 1/1 1/1 1/1)."""
    pairs = [(int(v), 1) if float(v).is_integer() else _rational(v, NEUTRAL_DENOMINATOR)
             for v in values]
    return tuple(x for pair in pairs for x in pair)


def write_dng(path, mosaic_u16, iso, fnumber, exposure, camera=CAMERAS['sony'], cfa=FROM_CAMERA,
              black=None, white=None, orientation=None, photometric=PHOTOMETRIC_CFA,
              color_matrix=XYZ_TO_SRGB, neutral=(1, 1, 1), description=None):
    """An uncompressed DNG that LibRaw decodes like the camera's raw (by default a Sony A7S II:
    RGGB, levels 512/16383; CAMERAS['fuji']: X-T2 X-Trans, levels 1024/16383).

    Other cameras, for the tests of scripts/enhance.py: `cfa` the colour filter's repeat row by
    row from the top-left as letters, 2x2 ('BGGR') or 6x6 (X-Trans, 36 letters), None for no
    colour filter (a monochrome sensor); `black` one level or four in the order of a 2x2 cell
    (BlackLevelRepeatDim 2x2); `white` the saturation level; `orientation` the EXIF orientation
    (1-8); `photometric` PHOTOMETRIC_LINEAR_RAW for [H, W, 3] already demosaiced data.
    Natural scenes: `color_matrix` the camera's XYZ -> camera matrix (ColorMatrix1, D65),
    `neutral` its raw response to white (AsShotNeutral: postprocess's camera white balance
    divides by it), `description` where the scene came from (ImageDescription).
    """
    import tifffile
    matrix = []
    for row in color_matrix:
        for v in row:
            matrix += [int(round(v * MATRIX_DENOMINATOR)), MATRIX_DENOMINATOR]
    black = camera.black if black is None else black
    white = camera.white if white is None else white
    blacks = tuple(int(b) for b in black) if np.ndim(black) else (int(black),)
    tags = [
        (254, 4, 1, 0, True),                        # NewSubfileType: main image
        (271, 2, 0, camera.make, True),              # Make
        (272, 2, 0, camera.model, True),             # Model
        (33434, 5, 1, _rational(exposure, 100000), True),   # ExposureTime
        (33437, 5, 1, _rational(fnumber, 10), True),        # FNumber
        (34855, 3, 1, int(iso), True),               # ISOSpeedRatings
        (50706, 1, 4, (1, 4, 0, 0), True),           # DNGVersion
        (50707, 1, 4, (1, 1, 0, 0), True),           # DNGBackwardVersion
        (50708, 2, 0, '%s %s (generated)' % (camera.make, camera.model), True),  # UniqueCameraModel
        (50713, 3, 2, (2, 2) if len(blacks) == 4 else (1, 1), True),  # BlackLevelRepeatDim
        (50714, 4, len(blacks), blacks if len(blacks) > 1 else blacks[0], True),  # BlackLevel
        (50717, 4, 1, int(white), True),             # WhiteLevel
        (50721, 10, 9, tuple(matrix), True),         # ColorMatrix1
        (50728, 5, 3, _neutral(neutral), True),      # AsShotNeutral (1, 1, 1): no WB change
        (50778, 3, 1, 21, True),                     # CalibrationIlluminant1: D65
    ]
    if cfa == FROM_CAMERA:
        pattern = tuple(int(c) for c in np.asarray(camera.cfa).flat)
    else:
        pattern = None if cfa is None else tuple(CFA_COLORS.index(c) for c in cfa)
    if pattern is not None:
        side = int(round(len(pattern) ** 0.5))
        planes = tuple(sorted(set(pattern)))
        tags += [(33421, 3, 2, (side, side), True),  # CFARepeatPatternDim
                 (33422, 1, len(pattern), pattern, True),  # CFAPattern, row by row
                 (50710, 1, len(planes), planes, True),  # CFAPlaneColor
                 (50711, 3, 1, 1, True)]             # CFALayout: rectangular
    if orientation is not None:
        tags.append((274, 3, 1, int(orientation), True))  # Orientation
    if description is not None:
        tags.append((270, 2, 0, description, True))  # ImageDescription
    with safe_files.atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp) as tif:
            tif.write(mosaic_u16, photometric=photometric, compression=None, metadata=None,
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


def mosaic(scene, cfa):
    """Sample an [H, W, 3] image on a CFA (colour index per site of its repeat tile) -> [H, W]."""
    rows, cols = np.shape(cfa)
    out = np.empty(scene.shape[:2], dtype=scene.dtype)
    for y in range(rows):
        for x in range(cols):
            out[y::rows, x::cols] = scene[y::rows, x::cols, cfa[y][x]]
    return out


def black_levels(camera, shape):
    """The camera's black level: its one number, or an [H, W] float32 map of its 2x2 cell's."""
    if not np.ndim(camera.black):
        return camera.black
    cell = np.reshape(np.asarray(camera.black, np.float32), (2, 2))
    return np.tile(cell, (shape[0] // 2, shape[1] // 2))


def long_exposure(rng, scene, camera):
    """Clean ground-truth raw counts (uint16) of a linear scene."""
    black = black_levels(camera, scene.shape)
    signal = mosaic(scene, camera.cfa) * (LONG_FILL * (camera.white - black))
    counts = black + signal + rng.normal(0.0, 1.0, size=signal.shape)
    return np.clip(np.round(counts), 0, camera.white).astype(np.uint16)


def short_exposure(rng, long_raw, ratio, iso, camera):
    """Raw counts of a `ratio`-times shorter exposure: shot noise (gain grows with ISO) plus read
    noise."""
    black = black_levels(camera, long_raw.shape)
    signal = (long_raw.astype(np.float32) - black).clip(0) / ratio
    gain = iso / 400.0  # DN per electron: higher ISO, fewer electrons per count, more noise
    electrons = rng.poisson(signal / gain)
    counts = black + electrons * gain + rng.normal(0.0, READ_NOISE_DN, signal.shape)
    return np.clip(np.round(counts), 0, camera.white).astype(np.uint16)


# ---------------------------------------------------------------- natural scenes (--scenes=natural)
# Photographs that the requirements install on every runtime (scikit-image's data folder,
# matplotlib's sample data), by split: a photograph feeds one split only, so no test or
# validation scene is a crop of a training photograph. Grey ones become neutral scenes.
# Left out: skimage's motorcycle_right (the stereo twin of motorcycle_left), drawings and
# charts, and everything that scikit-image downloads on demand (pooch) or scipy no longer ships.
PHOTOS = {
    'train': ('skimage/astronaut.png', 'skimage/rocket.jpg', 'matplotlib/grace_hopper.jpg',
              'skimage/hubble_deep_field.jpg', 'skimage/retina.jpg', 'skimage/camera.png',
              'skimage/brick.png', 'skimage/grass.png', 'skimage/gravel.png'),
    'val': ('skimage/ihc.png',),
    'test': ('skimage/chelsea.png', 'skimage/coffee.png', 'skimage/motorcycle_left.png'),
}
NATURAL, SHAPES = 'natural', 'shapes'
# --scenes when not given: the noise calibration exists for the Sony A7S II only.
DEFAULT_SCENES = {'sony': NATURAL, 'fuji': SHAPES, 'bayer': SHAPES}
MAX_ZOOM = 1.25  # crops at up to 1.25x the scale that just covers the raw (or the photo's own)
# Mirrored left-right half of the time; never upside down (a photo is not a natural scene then,
# and training flips and transposes its crops anyway).
FLIP_PROBABILITY = 0.5
# Brooks et al. darken each unprocessed image by a brightness gain drawn from N(0.8, 0.1)
# (random_gains() of timothybrooks/unprocessing): the long exposures' exposure variation.
EXPOSURE_MEAN, EXPOSURE_STD = 0.8, 0.1


def photo_path(name):
    """The file of a PHOTOS entry ('<package>/<file>') in the installed package."""
    package, filename = name.split('/')
    if package == 'matplotlib':
        import matplotlib
        return os.path.join(matplotlib.get_data_path(), 'sample_data', filename)
    import skimage
    return os.path.join(os.path.dirname(skimage.__file__), 'data', filename)


def load_photos(names):
    """{name: RGB PIL image} of PHOTOS entries; a missing one is a one-line SidError."""
    from PIL import Image
    photos = {}
    for name in names:
        path = photo_path(name)
        if not os.path.isfile(path):
            raise cli.SidError('%s: source photograph not found (the installed %s does not '
                               'ship it; --scenes=shapes needs none)'
                               % (path, name.split('/')[0]))
        with Image.open(path) as image:
            photos[name] = image.convert('RGB')
    return photos


def crop_photo(rng, photo, height, width):
    """(sRGB [height, width, 3] float32 in [0, 1], description) of a random crop of a PIL photo
    at a random scale, mirrored at random."""
    from PIL import Image
    cover = max(height / float(photo.height), width / float(photo.width))
    zoom = float(rng.uniform(cover, max(cover, 1.0) * MAX_ZOOM))
    size = (max(width, int(round(photo.width * zoom))),
            max(height, int(round(photo.height * zoom))))
    top = int(rng.integers(0, size[1] - height + 1))
    left = int(rng.integers(0, size[0] - width + 1))
    image = np.asarray(photo.resize(size, Image.BICUBIC), np.float32)
    image = image[top:top + height, left:left + width]
    mirrored = bool(rng.random() < FLIP_PROBABILITY)
    if mirrored:
        image = image[:, ::-1]
    text = 'zoom=%.3f top=%d left=%d mirrored=%d' % (zoom, top, left, mirrored)
    return image / np.float32(255), text


def write_natural_scene(rng, data_dir, sid, photo_name, photo, height, width, bursts, isos,
                        ratios, calib):
    """One scene's long and short exposures: the photo crop unprocessed to A7S II raw (the long
    exposure, noise-free), its expected counts / ratio through ELD's noise (the shorts)."""
    camera = CAMERAS['sony']
    srgb, crop_text = crop_photo(rng, photo, height, width)
    gains = unprocess.draw_white_balance(rng)
    exposure = float(rng.normal(EXPOSURE_MEAN, EXPOSURE_STD))
    linear = np.clip(unprocess.unprocess(srgb, gains) * exposure, 0, 1)
    signal = mosaic(linear, camera.cfa) * float(camera.white - camera.black)
    iso, fnumber = int(rng.choice(isos)), float(rng.choice(F_CHOICES))
    scene_text = 'SID natural scene: photo=%s %s exposure=%.3f gains=%.3f,1,%.3f' % (
        photo_name, crop_text, exposure, gains[0], gains[2])
    write = functools.partial(write_dng, camera=camera,
                              color_matrix=unprocess.SONY_A7S2_XYZ_TO_CAMERA,
                              neutral=(1.0 / gains[0], 1.0, 1.0 / gains[2]))
    long_rel, short_time = scene_names(camera, sid, ratios)
    long_raw = np.clip(np.round(camera.black + signal), 0, camera.white).astype(np.uint16)
    write(os.path.join(data_dir, long_rel), long_raw, iso, fnumber, LONG_EXPOSURE,
          description=scene_text)
    lines = []
    for burst in range(bursts):
        short_rel = short_name(camera, sid, burst, short_time)
        ratio = sid_lists.exposure_ratio(short_rel, long_rel)
        noise = noise_model.draw_frame_noise(rng, calib, iso)
        raw = noise_model.noisy_counts(rng, signal / ratio, noise, camera.black, camera.white)
        write(os.path.join(data_dir, short_rel), raw, iso, fnumber, short_time,
              description='%s noise: K=%.4f tl_shape=%.4f tl_scale=%.3f row_scale=%.3f' % (
                  scene_text, noise.gain, noise.tl_shape, noise.tl_scale, noise.row_scale))
        lines.append(sid_lists.format_list_line(short_rel, long_rel, iso, fnumber))
    return lines


# ---------------------------------------------------------------- the dataset

def short_exposure_time(ratio):
    """Seconds of a short exposure at `ratio`, two digits like SID's names (0.033 s for x300)."""
    return float(EXPOSURE_DIGITS % (LONG_EXPOSURE / ratio))


def scene_names(camera, sid, ratios):
    """(long exposure's list path, the scene's short exposure time): scene ids cycle through the
    ratios."""
    long_rel = './%s/long/%05d_00_%gs.dng' % (camera.folder, sid, LONG_EXPOSURE)
    return long_rel, short_exposure_time(ratios[sid % len(ratios)])


def short_name(camera, sid, burst, short_time):
    return './%s/short/%05d_%02d_%gs.dng' % (camera.folder, sid, burst, short_time)


def write_shapes_scene(rng, data_dir, sid, height, width, bursts, isos, ratios, camera):
    """One scene of shapes: its long exposure and burst of short ones; returns the list lines."""
    scene = make_scene(rng, height, width)
    long_raw = long_exposure(rng, scene, camera)
    long_rel, short_time = scene_names(camera, sid, ratios)
    fnumber = float(rng.choice(F_CHOICES))
    write_dng(os.path.join(data_dir, long_rel), long_raw, 100, fnumber, LONG_EXPOSURE, camera)
    iso = int(rng.choice(isos))
    lines = []
    for burst in range(bursts):
        short_rel = short_name(camera, sid, burst, short_time)
        ratio = sid_lists.exposure_ratio(short_rel, long_rel)
        raw = short_exposure(rng, long_raw, ratio, iso, camera)
        write_dng(os.path.join(data_dir, short_rel), raw, iso, fnumber, short_time, camera)
        lines.append(sid_lists.format_list_line(short_rel, long_rel, iso, fnumber))
    return lines


def check_size(camera, height, width):
    if height % camera.side_multiple or width % camera.side_multiple or \
            min(height, width) < camera.min_side:
        raise cli.SidError('--height/--width must be %s>= %d (%s), got %dx%d' % (
            'even and ' if camera.side_multiple == 2 else '', camera.min_side, camera.size_reason,
            height, width))


def check_exposures(isos, ratios):
    """ISOs must be positive and ratios give a short exposure shorter than the long one, within
    the paper's cap (the names carry the ratio: a larger one would silently become 300)."""
    for iso in isos:
        if iso <= 0:
            raise cli.SidError('--isos: ISO %g is not positive' % iso)
    for ratio in ratios:
        if not 1 < ratio <= sid_lists.MAX_RATIO:
            raise cli.SidError('--ratios: %g is not above 1 and at most the paper\'s cap %d'
                               % (ratio, sid_lists.MAX_RATIO))


def scene_ids(split, count):
    first = sid_lists.SPLITS[split] * 10000
    return [first + i + 1 for i in range(count)]


def generate(data_dir, height, width, n_train, n_test, n_val, bursts, seed, list_dir,
             camera='sony', scenes=SHAPES, isos=ISO_CHOICES, ratios=SID_RATIOS):
    """Write the raws and list files of `camera` (a CAMERAS key) with `scenes` (NATURAL or SHAPES:
    the default here, tiny and fast for the tests); returns {split: [list lines]}.

    Everything is checked before the first file is written: sizes, ISOs and ratios (for natural
    scenes inside the noise calibration), the camera's calibration, the source photographs.
    """
    profile = CAMERAS[camera]
    check_size(profile, height, width)
    check_exposures(isos, ratios)
    paths = list_paths(list_dir, profile.list_names)
    counts = (('train', n_train), ('test', n_test), ('val', n_val))
    if scenes == NATURAL:
        calib = noise_model.calibration(camera, isos, ratios)
        photos = load_photos(name for split, n in counts for name in PHOTOS[split][:n])
    lines = {}
    for split, count in counts:
        lines[split] = []
        for i, sid in enumerate(scene_ids(split, count)):
            rng = np.random.default_rng([seed, sid])
            if scenes == NATURAL:
                name = PHOTOS[split][i % len(PHOTOS[split])]
                lines[split] += write_natural_scene(rng, data_dir, sid, name, photos[name], height,
                                                    width, bursts, isos, ratios, calib)
            else:
                lines[split] += write_shapes_scene(rng, data_dir, sid, height, width, bursts,
                                                   isos, ratios, profile)
        sid_lists.write_list(lines[split], paths[split])
    return lines


def numbers(flag, values):
    """A list flag's values as numbers, or a one-line error naming the flag."""
    try:
        return tuple(float(v) if '.' in v else int(v) for v in values)
    except ValueError:
        raise cli.SidError('--%s: not a number list: %s' % (flag, ','.join(values)))


def define_flags():
    from absl import flags
    flags.DEFINE_enum('camera', 'sony', sorted(CAMERAS),
                      'sony: A7S II Bayer raws; fuji: X-T2 X-Trans raws (the paper\'s two '
                      'cameras); bayer: another camera (12-bit GRBG, black 600-603 per site), '
                      'for train_Sony.py --camera=bayer')
    flags.DEFINE_enum('scenes', None, [NATURAL, SHAPES],
                      'natural: crops of photographs shipped by scikit-image and matplotlib, '
                      'unprocessed to raw, with ELD\'s calibrated A7S II noise (Sony only); '
                      'shapes: generated edges, gradients and textures with Poisson-Gaussian '
                      'noise. Default: natural for sony, shapes for fuji and bayer')
    flags.DEFINE_string('data_dir', 'dataset',
                        'dataset root; raws go to <data_dir>/{Sony,Fuji,Bayer}/{short,long}')
    flags.DEFINE_string('list_dir', '', 'where {Sony,Fuji,Bayer}_{train,test,val}_list.txt are '
                        'written (default: the data_dir; never the project root, where the '
                        'official lists are)')
    flags.DEFINE_integer('height', 512, 'raw height in pixels (Sony: even, real 2848; '
                         'Fuji: >= %d, real 4032)' % XTRANS_MIN_SIDE)
    flags.DEFINE_integer('width', 768, 'raw width in pixels (Sony: even, real 4256; '
                         'Fuji: >= %d, real 6032)' % XTRANS_MIN_SIDE)
    flags.DEFINE_integer('train_scenes', 8, 'number of training scenes (ids 0xxxx)')
    flags.DEFINE_integer('test_scenes', 3, 'number of test scenes (ids 1xxxx)')
    flags.DEFINE_integer('val_scenes', 2, 'number of validation scenes (ids 2xxxx)')
    flags.DEFINE_integer('bursts', 2, 'short-exposure burst frames per scene')
    flags.DEFINE_list('isos', [str(i) for i in ISO_CHOICES], 'ISOs a scene is shot at, one '
                      'drawn per scene (natural: inside the noise calibration, 100-6400)')
    flags.DEFINE_list('ratios', [str(r) for r in SID_RATIOS], 'exposure ratios, one per scene in '
                      'turn; the short exposure is 10 s / ratio (natural: 100-300, ELD\'s range)')
    flags.DEFINE_integer('seed', 0, 'random seed: the same seed gives byte-identical files',
                         lower_bound=0)


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    scenes = f.scenes or DEFAULT_SCENES[f.camera]
    lines = generate(f.data_dir, f.height, f.width, f.train_scenes, f.test_scenes, f.val_scenes,
                     f.bursts, f.seed, f.list_dir or f.data_dir, f.camera, scenes,
                     numbers('isos', f.isos), numbers('ratios', f.ratios))
    print('wrote %s (%s scenes): %s' % (
        os.path.join(f.data_dir, CAMERAS[f.camera].folder), scenes,
        ', '.join('%d %s pairs' % (len(v), k) for k, v in lines.items())))


if __name__ == '__main__':
    cli.run(main, define_flags)
