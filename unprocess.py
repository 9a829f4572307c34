"""Photographs back to camera raw, as Brooks et al. "unprocess" them ("Unprocessing Images for
Learned Raw Denoising", CVPR 2019): the generated natural scenes' long exposures.

A JPEG or PNG photo went through a camera pipeline: white balance, a colour matrix from camera
to sRGB, the sRGB gamma and a tone curve. Inverting each step in turn gives what the sensor would
have recorded, in the Sony A7S II's own colour space, so that rawpy's postprocess (LibRaw), the
path of every ground truth here, develops it back into a sensible photo:

  untone          Brooks' inverse of the smoothstep tone curve 3x^2 - 2x^3
  srgb_to_linear  the sRGB transfer function inverted (IEC 61966-2-1)
  camera matrix   linear sRGB -> camera RGB through the A7S II's XYZ-to-camera matrix (the one
                  LibRaw uses for this camera), rows normalised so that white stays white
  white balance   divided by the scene's gains: raw white is (1/red gain, 1, 1/blue gain)

The DNG then carries the same matrix (ColorMatrix1) and the gains' inverse (AsShotNeutral), so
LibRaw's camera white balance and colour conversion undo the last two steps exactly. It does not
apply a tone curve and uses a BT.709 gamma, so the developed target is a flatter rendering of the
photo, exactly like the targets of the real SID set.
"""
import numpy as np

# LibRaw src/tables/colordata.cpp, adobe_coeff(): the entry "ILCE-7S" (the A7S II shares it;
# "All matrices are from Adobe DNG Converter"), XYZ (D65) -> camera, in units of 1/10000.
SONY_A7S2_XYZ_TO_CAMERA = ((0.5838, -0.1430, -0.0246),
                           (-0.3497, 1.1477, 0.2297),
                           (-0.0748, 0.1885, 0.5778))
# Linear sRGB -> XYZ (D65), IEC 61966-2-1; LibRaw's xyz_rgb (src/tables/colorconst.cpp).
SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
# Brooks et al.'s white-balance gains, drawn uniformly from these ranges (green 1): their public
# code, timothybrooks/unprocessing, unprocess.py random_gains().
RED_GAINS = (1.9, 2.4)
BLUE_GAINS = (1.5, 1.9)
SRGB_KNEE, SRGB_SLOPE, SRGB_OFFSET, SRGB_EXPONENT = 0.04045, 12.92, 0.055, 2.4


def untone(srgb):
    """Brooks' inverse of the smoothstep tone curve y = 3x^2 - 2x^3 (values in [0, 1])."""
    y = np.clip(srgb, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def srgb_to_linear(x):
    """The sRGB transfer function inverted: encoded [0, 1] -> linear light [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= SRGB_KNEE, x / SRGB_SLOPE,
                    ((x + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)) ** SRGB_EXPONENT)


def rgb_to_camera(xyz_to_camera=SONY_A7S2_XYZ_TO_CAMERA):
    """Linear sRGB -> camera RGB, each row normalised to sum 1 (white -> white), as LibRaw builds
    the inverse of its camera -> sRGB conversion from the same matrix."""
    matrix = np.dot(np.asarray(xyz_to_camera, np.float64), np.asarray(SRGB_TO_XYZ, np.float64))
    return matrix / matrix.sum(axis=1, keepdims=True)


def draw_white_balance(rng):
    """(red, green, blue) gains of one scene, Brooks' ranges."""
    return (float(rng.uniform(*RED_GAINS)), 1.0, float(rng.uniform(*BLUE_GAINS)))


def unprocess(srgb, gains, xyz_to_camera=SONY_A7S2_XYZ_TO_CAMERA):
    """[H, W, 3] sRGB in [0, 1] -> linear camera RGB before white balance, float32 in [0, 1]."""
    linear = srgb_to_linear(untone(srgb))
    camera = np.dot(linear, rgb_to_camera(xyz_to_camera).T) / np.asarray(gains, np.float64)
    return np.clip(camera, 0.0, 1.0).astype(np.float32)  # a sensor records no negative light
