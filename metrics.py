"""PSNR and SSIM of 8-bit RGB images under named protocols: one implementation for eval.py and
for validation during training.

Published SID numbers for the same weights disagree mostly because the SSIM protocol is left
unstated, so every protocol here has a name and a one-line description that goes into every report:

  skimage  skimage structural_similarity averaged over the RGB channels, its default 7x7 uniform
           window with sample covariance, borders cropped (the Ascend ModelZoo protocol).
  wang     Wang et al. 2004: Gaussian window sigma 1.5, population covariance, also per channel.
  matlab   MATLAB's ssim(A, ref) with default parameters on an H x W x 3 uint8 image, the protocol
           behind the paper's 0.787 (the authors "used MATLAB with default parameters"). MATLAB
           treats the image as a 3-D volume: one 11 x 11 x 11 Gaussian window (sigma 1.5) that
           also runs across the colour planes, edge values replicated at every border (no
           cropping), the SSIM map averaged over every voxel.
"""
import re
from collections import OrderedDict, namedtuple

import numpy as np

import cli

PEAK = 255.0  # 8-bit images
K1, K2 = 0.01, 0.03  # SSIM's stabilising constants C1 = (K1 L)^2, C2 = (K2 L)^2 (all protocols)
GAUSSIAN_SIGMA = 1.5  # Wang's and MATLAB's window
MATLAB_RADIUS = 5  # MATLAB: ceil(3 sigma) -> 11 taps along every axis, colour included
SKIMAGE_WINDOW = 7  # skimage's default uniform window
# skimage's Gaussian window: 2 * int(3.5 sigma + 0.5) + 1 = 11 pixels for sigma 1.5
WANG_WINDOW = 2 * int(3.5 * GAUSSIAN_SIGMA + 0.5) + 1

# description; skimage keyword arguments (None: not skimage); smallest image side it accepts
Protocol = namedtuple('Protocol', 'description skimage_args min_side')
SSIM_PROTOCOLS = OrderedDict([
    ('skimage', Protocol(
        'skimage structural_similarity, mean over RGB channels, 7x7 uniform window, sample '
        'covariance, data_range 255 (Ascend ModelZoo protocol)',
        dict(data_range=PEAK), SKIMAGE_WINDOW)),
    ('wang', Protocol(
        'Wang et al. 2004: Gaussian window sigma 1.5, population covariance, data_range 255, mean '
        'over RGB channels',
        dict(data_range=PEAK, gaussian_weights=True, sigma=GAUSSIAN_SIGMA,
             use_sample_covariance=False), WANG_WINDOW)),
    ('matlab', Protocol(
        'MATLAB ssim defaults (the paper\'s protocol): the RGB image as one 3-D volume, '
        '11x11x11 Gaussian window sigma 1.5 across the colour planes too, replicate padding, '
        'mean over every voxel, L 255',
        None, 1)),
])


def psnr(a, b):
    """10 log10(255^2 / MSE) over all pixels and channels (inf for identical images)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else float(10.0 * np.log10(PEAK ** 2 / mse))


def ssim(a, b, protocol='skimage'):
    """SSIM of two HxWx3 uint8 images under a named protocol.

    An image too small for the protocol's window is a SidError (skimage's own ValueError differs
    between versions and says nothing about which image); callers add the file name.
    """
    spec = SSIM_PROTOCOLS[protocol]
    if min(a.shape[:2]) < spec.min_side:
        raise cli.SidError('%dx%d image is smaller than the %dx%d window of SSIM protocol %s'
                           % (a.shape[1], a.shape[0], spec.min_side, spec.min_side, protocol))
    if spec.skimage_args is None:
        return ssim_matlab(a, b)
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, **dict(spec.skimage_args, **skimage_channels())))


def skimage_channels():
    """The keyword that tells a scikit-image function the last axis holds colour channels:
    channel_axis arrived in 0.19; the Ascend image's 0.17 / 0.18 only know multichannel."""
    import skimage
    version = tuple(int(x) for x in re.findall(r'\d+', skimage.__version__)[:2])
    return dict(channel_axis=-1) if version >= (0, 19) else dict(multichannel=True)


def ssim_matlab(a, b):
    """MATLAB's ssim(a, b) for uint8 arrays of any shape (an RGB image is one 3-D volume).

    The Gaussian weights are separable, so scipy's per-axis filter with exactly 5 taps either
    side (truncate = radius / sigma) and edge replication ('nearest' = imfilter's 'replicate')
    gives MATLAB's normalised 11x11x11 window sums.
    """
    from scipy import ndimage
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def window_mean(v):
        return ndimage.gaussian_filter(v, GAUSSIAN_SIGMA, mode='nearest',
                                       truncate=MATLAB_RADIUS / GAUSSIAN_SIGMA)

    mu_x, mu_y = window_mean(x), window_mean(y)
    var_x = window_mean(x * x) - mu_x * mu_x
    var_y = window_mean(y * y) - mu_y * mu_y
    cov = window_mean(x * y) - mu_x * mu_y
    c1, c2 = (K1 * PEAK) ** 2, (K2 * PEAK) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
                / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)))
    return float(ssim_map.mean())
