"""unprocess.py: each step inverts its camera-pipeline step, and LibRaw develops an unprocessed raw
back into the photo's linear colours (the round trip every natural ground truth takes)."""
import numpy as np
import pytest

import make_dataset
import raw_io
import unprocess

GAINS = (2.1, 1.0, 1.7)


def smoothstep(x):
    """The tone curve Brooks et al. assume a photo went through."""
    return 3 * x ** 2 - 2 * x ** 3


def srgb_encode(linear):
    """The sRGB transfer function (IEC 61966-2-1), written out independently."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def photo_like(height, width):
    """A smooth, colourful, unsaturated sRGB image (demosaicing it loses nothing)."""
    yy, xx = np.mgrid[0:height, 0:width] / np.float32(max(height, width))
    return np.stack([0.3 + 0.3 * xx, 0.5 + 0.2 * np.sin(6 * yy), 0.6 - 0.3 * yy], axis=-1)


def test_each_step_inverts_the_pipelines_step():
    y = np.linspace(0, 1, 1001)
    assert np.allclose(smoothstep(unprocess.untone(y)), y, atol=1e-9)
    assert np.allclose(srgb_encode(unprocess.srgb_to_linear(y)), y, atol=1e-9)
    assert unprocess.srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.214041, abs=1e-6)
    matrix = unprocess.rgb_to_camera()
    assert np.allclose(matrix.sum(axis=1), 1)  # white stays white before white balance
    white = unprocess.unprocess(np.ones((1, 1, 3)), GAINS)[0, 0]
    assert np.allclose(white, 1 / np.array(GAINS))  # raw white: green strongest, as in cameras


def test_a_dark_pixel_never_becomes_negative_light():
    pure = np.array([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    camera = unprocess.unprocess(pure, GAINS)
    assert camera.dtype == np.float32 and camera.min() >= 0 and camera.max() <= 1


def test_libraw_develops_an_unprocessed_raw_back_to_the_photos_linear_colours(tmp_path):
    """The DNG carries the A7S II matrix and 1 / gains as AsShotNeutral: postprocess's camera
    white balance and colour conversion (here without gamma) give the photo's linear sRGB."""
    srgb = photo_like(64, 96)
    camera = unprocess.unprocess(srgb, GAINS)
    sony = make_dataset.CAMERAS['sony']
    signal = make_dataset.mosaic(camera, sony.cfa) * (sony.white - sony.black)
    counts = np.round(sony.black + signal)
    path = str(tmp_path / 'long.dng')
    make_dataset.write_dng(path, counts.astype(np.uint16), 100, 8.0, 10.0,
                           color_matrix=unprocess.SONY_A7S2_XYZ_TO_CAMERA,
                           neutral=[1 / g for g in GAINS])
    developed = raw_io.postprocess(path, gamma=(1, 1)) / raw_io.GT_SCALE
    expected = unprocess.srgb_to_linear(unprocess.untone(srgb))
    border = 4  # the demosaic's edge
    error = (developed - expected)[border:-border, border:-border]
    assert 10 * np.log10(1 / np.mean(error ** 2)) > 60
