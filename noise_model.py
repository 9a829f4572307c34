"""The Sony A7S II's noise in the dark, as ELD calibrated it: the short exposures of generated data.

Plain Poisson-plus-Gaussian noise is not what the SID camera records at x100-x300. Wei et al.
measured it ("A Physics-based Noise Formation Model for Extreme Low-light Raw Denoising", CVPR
2020; "Physics-based Noise Modeling for Extreme Low-light Photography", TPAMI 2021) and model a
raw count, in DN above the black level, as

    D = K Poisson(I / K) + N_read + N_row + b,   then rounded to whole counts (N_q)

  K       system gain, DN per electron: proportional to the ISO (the analogue gain)
  shot    K Poisson(I / K): I the expected signal in DN, so the variance is K I (the "signal line")
  N_read  Tukey-lambda TL(lambda, 0, sigma_TL): heavier tails than a Gaussian in the dark
  N_row   N(0, sigma_r), one value for every pixel of a sensor row (banding)
  b       colour bias: the black level off by a small per-channel amount
  N_q     the ADC's rounding to whole counts (variance 1/12)

sigma_TL and sigma_r grow with K along fitted lines in log space: log sigma = slope log K + bias
+ N(0, sigma), drawn per frame. Every number below is ELD's published SonyA7S2 calibration;
docs/data.md says where each comes from and what is inferred. The formulas are the papers',
the code is this project's.
"""
from collections import namedtuple

import numpy as np

import cli
import raw_io

# log(scale) = slope * log(K) + bias + N(0, sigma): ELD's fitted relation of a noise scale to K.
LogLinear = namedtuple('LogLinear', 'slope bias sigma')
Calibration = namedtuple('Calibration', [
    'name',         # shown in errors
    'gain_min',     # K at iso_min, DN per electron
    'gain_max',     # K at iso_max
    'iso_min',      # the ISOs the calibrated gains span (K proportional to the ISO)
    'iso_max',
    'ratio_min',    # the low-light factors ELD synthesises data at
    'ratio_max',
    'tl_shapes',    # Tukey-lambda shapes lambda measured on bias frames, one drawn per frame
    'tl_scale',     # LogLinear of sigma_TL (read noise scale, DN)
    'row_scale',    # LogLinear of sigma_r (row noise standard deviation, DN)
    'color_bias',   # measured black-level offsets (DN) per channel R, G, B, G; a row per frame
])

# Vandermode/ELD at commit 53d5408dec3a33e5ca304bb49682d7b6b6dc79c2,
# camera_params/release/SonyA7S2_params.npy (a pickled dict; its keys in brackets), values
# rounded to 7 digits; noise.py of the same commit for the ratio range.
SONY_A7S2 = Calibration(
    name='Sony A7S II (ELD SonyA7S2)',
    gain_min=0.09391607,    # ['Kmin']
    gain_max=6.010629,      # ['Kmax'] = 64 x Kmin exactly: six stops of analogue gain
    iso_min=100,            # inferred: Kmin at ISO 100 ... (docs/data.md)
    iso_max=6400,           # ... Kmax six stops up, at ISO 6400
    ratio_min=100,          # noise.py line 223: ratio = uniform(low=100, high=300)
    ratio_max=300,
    tl_shapes=(0.1142857, 0.1285714, 0.05714286, 0.04285714, 0.0, 0.0, -0.04285714,
               -0.05714286, -0.08571429, -0.08571429, -0.08571429, -0.08571429, -0.1142857,
               -0.1142857, -0.1428571, -0.1285714, -0.1428571, -0.1428571),   # ['G_shape']
    tl_scale=LogLinear(0.4621050, 0.5657147, 0.2633712),     # ['Profile-1']['G_scale']
    row_scale=LogLinear(0.5275360, -0.5917003, 0.2942881),   # ['Profile-1']['R_scale']
    color_bias=(                                             # ['color_bias'], 18 x 4
        (1.482164, 1.468152, 1.483344, 1.470076), (1.497519, 1.480223, 1.496969, 1.481620),
        (-1.017582, -1.037664, -1.021530, -1.037841), (-1.017158, -1.039220, -1.018530, -1.037142),
        (-0.2604090, -0.2951682, -0.2669919, -0.2944749),
        (-0.2575561, -0.2896776, -0.2618834, -0.2919002),
        (0.6112956, 0.5769089, 0.6100786, 0.5755236), (0.6052579, 0.5677652, 0.6009282, 0.5605873),
        (2.071886, 2.009204, 2.306077, 2.243378), (2.091345, 2.020181, 2.328244, 2.259930),
        (-1.346563, -1.370578, -1.348873, -1.365721), (-1.321861, -1.364105, -1.331405, -1.359529),
        (-1.559501, -1.597668, -1.320441, -1.357152), (-1.552999, -1.601949, -1.322498, -1.358527),
        (1.170955, 1.081544, 1.147313, 1.072484), (1.183163, 1.071799, 1.178615, 1.067134),
        (4.073152, 3.857114, 4.295816, 4.096043), (4.054171, 3.849726, 4.292276, 4.085305)),
)
# make_dataset.py camera names that have a calibration (the others' noise was never measured).
CALIBRATIONS = {'sony': SONY_A7S2}

# One frame's noise: K, the read noise's shape and scale, the row noise's scale, the colour bias.
FrameNoise = namedtuple('FrameNoise', 'gain tl_shape tl_scale row_scale color_bias')


def calibration(camera, isos=(), ratios=()):
    """The calibration of make_dataset.py's `camera`, after checking that every ISO and ratio lies
    inside it; anything else is a one-line SidError (nothing is extrapolated silently)."""
    if camera not in CALIBRATIONS:
        raise cli.SidError('no calibrated noise model for --camera=%s: ELD\'s calibration here '
                           'is the Sony A7S II\'s (--camera=%s); use --scenes=shapes'
                           % (camera, '/'.join(sorted(CALIBRATIONS))))
    calib = CALIBRATIONS[camera]
    for name, values, low, high in (('ISO', isos, calib.iso_min, calib.iso_max),
                                    ('ratio', ratios, calib.ratio_min, calib.ratio_max)):
        outside = [v for v in values if not low <= v <= high]
        if outside:
            raise cli.SidError('%s %g is outside the %s noise calibration (%ss %g to %g)'
                               % (name, outside[0], calib.name, name, low, high))
    return calib


def system_gain(calib, iso):
    """K in DN per electron: proportional to the ISO, Kmin at the lowest calibrated ISO."""
    return calib.gain_min * float(iso) / calib.iso_min


def draw_frame_noise(rng, calib, iso):
    """One frame's noise parameters at `iso`, drawn as ELD does: the scales from their log-linear
    relation to K with its scatter, a measured shape and a measured colour bias."""
    gain = system_gain(calib, iso)

    def scale(fit):
        log_scale = fit.slope * np.log(gain) + fit.bias + fit.sigma * rng.standard_normal()
        return float(np.exp(log_scale))

    tl_scale, row_scale = scale(calib.tl_scale), scale(calib.row_scale)
    shape = calib.tl_shapes[int(rng.integers(len(calib.tl_shapes)))]
    bias = calib.color_bias[int(rng.integers(len(calib.color_bias)))]
    return FrameNoise(gain, shape, tl_scale, row_scale, bias)


def tukey_lambda(rng, shape, size):
    """Standard Tukey-lambda samples by inverting scipy's quantile function (scipy's own rvs does
    not take a numpy Generator on the Ascend image's scipy 1.2)."""
    from scipy import stats
    return stats.tukeylambda.ppf(rng.random(size), shape)


def bayer_map(values, shape):
    """[H, W] map of four per-channel values (R, G, B, G order of raw_io.BAYER_OFFSETS) on an
    RGGB mosaic."""
    out = np.empty(shape, np.float64)
    for value, (y, x) in zip(values, raw_io.BAYER_OFFSETS):
        out[y::2, x::2] = value
    return out


def noisy_counts(rng, signal, noise, black, white):
    """A raw frame: `signal` (expected DN above black on an RGGB mosaic, [H, W]) through shot,
    read, row and colour-bias noise, quantised to whole counts and clipped like a 14-bit ADC."""
    electrons = rng.poisson(np.maximum(signal, 0) / noise.gain)
    counts = electrons * noise.gain
    counts += noise.tl_scale * tukey_lambda(rng, noise.tl_shape, signal.shape)
    counts += noise.row_scale * rng.standard_normal((signal.shape[0], 1))
    counts += bayer_map(noise.color_bias, signal.shape)
    return np.clip(np.round(counts + black), 0, white).astype(np.uint16)
