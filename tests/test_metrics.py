"""metrics.py: PSNR against the formula; SSIM protocols against skimage and, for MATLAB's protocol,
against a direct evaluation of its definition (explicit padded 3-D window sums)."""
import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import cli
import metrics

RNG_SEED = 5


def smooth_image(rng, height=48, width=64):
    """A textured uint8 RGB image (SSIM on pure noise says little)."""
    y, x = np.mgrid[:height, :width].astype(np.float64)
    wave = np.sin(x / 5.0) * np.cos(y / 7.0)
    base = 128 + 60 * wave[..., None] * np.array([1, .7, .4])
    return np.clip(base + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


def noisy(rng, image, sigma):
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def matlab_ssim_by_definition(a, b):
    """MATLAB ssim written out: every voxel's statistics summed over its own 11x11x11 Gaussian
    neighbourhood of the edge-padded volume (no filtering library, no separability)."""
    radius, sigma, peak = 5, 1.5, 255.0
    offsets = np.arange(-radius, radius + 1)
    dz, dy, dx = np.meshgrid(offsets, offsets, offsets, indexing='ij')
    weights = np.exp(-(dx ** 2 + dy ** 2 + dz ** 2) / (2 * sigma ** 2))
    weights /= weights.sum()
    x, y = a.astype(np.float64), b.astype(np.float64)
    padded = [np.pad(v, radius, mode='edge') for v in (x, y, x * x, y * y, x * y)]
    sums = [np.zeros(x.shape) for _ in padded]
    h, w, c = x.shape
    for i in range(2 * radius + 1):
        for j in range(2 * radius + 1):
            for k in range(2 * radius + 1):
                for total, p in zip(sums, padded):
                    total += weights[i, j, k] * p[i:i + h, j:j + w, k:k + c]
    mx, my, sxx, syy, sxy = sums
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    vx, vy, cxy = sxx - mx ** 2, syy - my ** 2, sxy - mx * my
    return float(np.mean((2 * mx * my + c1) * (2 * cxy + c2)
                         / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))))


def test_psnr_is_the_8bit_formula():
    a = np.full((8, 10, 3), 100, np.uint8)
    b = a + np.uint8(5)  # MSE = 25 on every pixel and channel
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255.0 ** 2 / 25))
    c = a.copy()
    c[0, 0, 0] = 0  # one channel of one pixel off by 100: MSE = 100^2 / 240
    assert metrics.psnr(a, c) == pytest.approx(10 * math.log10(255.0 ** 2 * 240 / 100 ** 2))
    assert metrics.psnr(a, a) == float('inf')
    rng = np.random.RandomState(RNG_SEED)
    x, y = smooth_image(rng), smooth_image(rng)
    assert metrics.psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=255))


def test_skimage_and_wang_protocols_match_skimage_per_channel():
    rng = np.random.RandomState(RNG_SEED)
    gt = smooth_image(rng)
    out = noisy(rng, gt, 20)
    default = metrics.ssim(out, gt, 'skimage')
    # ModelZoo protocol = skimage defaults, i.e. the mean of the per-channel SSIMs.
    per_channel = [structural_similarity(out[..., c], gt[..., c], data_range=255) for c in range(3)]
    assert default == pytest.approx(np.mean(per_channel), abs=1e-12)
    wang = metrics.ssim(out, gt, 'wang')
    expected = np.mean([structural_similarity(out[..., c], gt[..., c], data_range=255,
                                              gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False) for c in range(3)])
    assert wang == pytest.approx(expected, abs=1e-12)
    assert abs(wang - default) > 1e-3  # the protocols really differ
    assert 0.2 < default < 0.95
    for protocol in metrics.SSIM_PROTOCOLS:
        assert metrics.ssim(gt, gt, protocol) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize('shape', [(13, 17, 3), (24, 20, 3), (9, 30, 3)])
def test_matlab_protocol_is_the_formula(shape):
    rng = np.random.RandomState(RNG_SEED)
    a = rng.randint(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 25, shape), 0, 255).astype(np.uint8)
    direct = matlab_ssim_by_definition(a, b)
    assert metrics.ssim(a, b, 'matlab') == pytest.approx(direct, abs=1e-6)
    assert metrics.ssim_matlab(a, b) == metrics.ssim(a, b, 'matlab')
    # The window really spans the colour planes: scoring the channels apart gives another number.
    per_plane = np.mean([matlab_ssim_by_definition(a[..., c:c + 1], b[..., c:c + 1])
                         for c in range(3)])
    assert abs(direct - per_plane) > 1e-4
    c = rng.randint(0, 256, shape).astype(np.uint8)  # unrelated images: far from 1
    assert metrics.ssim(a, c, 'matlab') == pytest.approx(matlab_ssim_by_definition(a, c), abs=1e-6)
    assert metrics.ssim(a, c, 'matlab') < 0.2


def test_matlab_protocol_on_a_real_looking_pair_differs_from_the_others():
    rng = np.random.RandomState(RNG_SEED)
    gt = smooth_image(rng, 24, 32)
    out = noisy(rng, gt, 20)
    scores = {p: metrics.ssim(out, gt, p) for p in metrics.SSIM_PROTOCOLS}
    assert scores['matlab'] == pytest.approx(matlab_ssim_by_definition(out, gt), abs=1e-6)
    assert len(set(round(s, 3) for s in scores.values())) == 3


def test_matlab_protocol_identical_images_and_constant_offset():
    rng = np.random.RandomState(RNG_SEED)
    a = smooth_image(rng, 20, 24)
    assert metrics.ssim(a, a, 'matlab') == pytest.approx(1.0, abs=1e-12)
    # A constant offset leaves variances and covariance alone: only the luminance term drops.
    a = np.clip(a, 0, 215)
    b = a + np.uint8(40)
    value = metrics.ssim(b, a, 'matlab')
    assert value == pytest.approx(matlab_ssim_by_definition(b, a), abs=1e-6)
    assert 0.9 < value < 1.0
    assert metrics.ssim(a, b, 'matlab') == pytest.approx(value, abs=1e-12)  # symmetric


def test_matlab_protocol_edge_cases():
    c1 = (0.01 * 255) ** 2
    # Constant images: zero variance, so the map is the luminance term everywhere.
    flat_a, flat_b = np.full((12, 12, 3), 100, np.uint8), np.full((12, 12, 3), 140, np.uint8)
    assert metrics.ssim(flat_a, flat_a, 'matlab') == pytest.approx(1.0, abs=1e-12)
    expected = (2 * 100.0 * 140 + c1) / (100.0 ** 2 + 140.0 ** 2 + c1)
    assert metrics.ssim(flat_a, flat_b, 'matlab') == pytest.approx(expected, abs=1e-9)
    # Smaller than the window in every direction: replicate padding, still the definition.
    rng = np.random.RandomState(RNG_SEED)
    for shape in [(4, 3, 3), (1, 1, 3), (2, 12, 3)]:
        a = rng.randint(0, 256, shape).astype(np.uint8)
        b = rng.randint(0, 256, shape).astype(np.uint8)
        assert metrics.ssim(a, b, 'matlab') == pytest.approx(matlab_ssim_by_definition(a, b),
                                                             abs=1e-6)


def test_images_too_small_for_a_skimage_window_are_a_one_line_error():
    small = np.zeros((6, 40, 3), np.uint8)
    with pytest.raises(cli.SidError, match=r'^40x6 image is smaller than the 7x7 window of SSIM '
                       r'protocol skimage$'):
        metrics.ssim(small, small, 'skimage')
    mid = np.zeros((10, 10, 3), np.uint8)  # enough for 7x7, not for the 11x11 Gaussian
    assert metrics.ssim(mid, mid, 'skimage') == pytest.approx(1.0)
    with pytest.raises(cli.SidError, match='smaller than the 11x11 window of SSIM protocol '
                       'wang'):
        metrics.ssim(mid, mid, 'wang')
    assert metrics.ssim(mid, mid, 'matlab') == pytest.approx(1.0)


def test_ssim_on_skimage_before_0_19_uses_multichannel(monkeypatch):
    """The Ascend image's skimage 0.17/0.18 has no channel_axis: metrics must pass multichannel."""
    import skimage
    import skimage.metrics
    calls = []
    monkeypatch.setattr(skimage, '__version__', '0.18.3')
    monkeypatch.setattr(skimage.metrics, 'structural_similarity',
                        lambda a, b, **kwargs: calls.append(kwargs) or 0.5)
    image = np.zeros((16, 16, 3), np.uint8)
    assert metrics.ssim(image, image, 'wang') == 0.5
    assert calls == [dict(multichannel=True, data_range=255.0, gaussian_weights=True, sigma=1.5,
                          use_sample_covariance=False)]
