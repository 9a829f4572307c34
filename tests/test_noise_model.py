"""noise_model.py: the statistics of generated frames against ELD's cited SonyA7S2 parameters."""
import numpy as np
import pytest
from scipy import stats

import cli
import noise_model
import raw_io

CALIB = noise_model.SONY_A7S2
BLACK, WHITE = raw_io.BLACK_LEVEL, raw_io.WHITE_LEVEL
NO_BIAS = (0.0, 0.0, 0.0, 0.0)
HEAVIEST_TAILS = min(CALIB.tl_shapes)  # -1/7: the most non-Gaussian shape ELD measured
QUANTISATION_VARIANCE = 1.0 / 12  # rounding to whole counts


def frame(noise, signal, seed=0):
    """Counts above black (float) of a frame with `signal` expected DN above black."""
    rng = np.random.default_rng(seed)
    return noise_model.noisy_counts(rng, signal, noise, BLACK, WHITE).astype(np.float64) - BLACK


def read_variance(noise):
    return noise.tl_scale ** 2 * float(stats.tukeylambda.var(noise.tl_shape))


def test_the_system_gain_spans_the_calibration_proportionally_to_the_iso():
    assert noise_model.system_gain(CALIB, 100) == pytest.approx(0.09391607)   # ELD's Kmin
    assert noise_model.system_gain(CALIB, 6400) == pytest.approx(6.010629)    # ELD's Kmax
    assert noise_model.system_gain(CALIB, 800) == pytest.approx(8 * 0.09391607)


def test_variance_grows_along_the_signal_line_with_slope_k():
    """Var(D) = K I + sigma_TL^2 Var(TL(lambda)) + 1/12 on flat fields without row noise: the
    fitted line's slope is the system gain of the ISO, its intercept the read noise."""
    rng = np.random.default_rng(7)
    noise = noise_model.draw_frame_noise(rng, CALIB, 3200)
    noise = noise._replace(row_scale=0.0, color_bias=NO_BIAS)
    levels = np.array([0.0, 25.0, 50.0, 100.0, 200.0])
    variances = [frame(noise, np.full((256, 256), level), seed=i).var()
                 for i, level in enumerate(levels)]
    slope, intercept = np.polyfit(levels, variances, 1)
    assert slope == pytest.approx(noise_model.system_gain(CALIB, 3200), rel=0.03)
    assert intercept == pytest.approx(read_variance(noise) + QUANTISATION_VARIANCE, rel=0.05)
    means = [frame(noise, np.full((64, 64), level)).mean() for level in levels]
    assert np.allclose(means, levels, atol=0.5)  # unbiased: the noise has zero mean


def test_read_noise_has_the_calibrated_tukey_lambda_shape():
    """A dark frame's noise: the probability-plot correlation (ELD's way of measuring it) peaks
    at the calibrated shape, far from a Gaussian's (lambda ~ 0.14); its variance is the TL's."""
    noise = noise_model.FrameNoise(noise_model.system_gain(CALIB, 6400), HEAVIEST_TAILS, 4.0, 0.0,
                                   NO_BIAS)
    dark = frame(noise, np.zeros((256, 256))).ravel()
    assert stats.ppcc_max(dark, brack=(-0.5, 0.5)) == pytest.approx(HEAVIEST_TAILS, abs=0.03)
    assert dark.var() == pytest.approx(read_variance(noise) + QUANTISATION_VARIANCE, rel=0.05)
    assert stats.kurtosis(dark) > 4  # Gaussian: 0; Tukey-lambda(-1/7): 6.6
    assert set(np.unique(dark)) <= set(np.arange(-BLACK, WHITE - BLACK + 1))  # whole counts


def test_row_noise_adds_its_variance_to_every_rows_mean():
    """The mean of a dark row varies by sigma_r^2 plus what is left of the pixel noise (/ W);
    a column's mean only by the pixel noise (/ H): every column has the same row offsets."""
    noise = noise_model.FrameNoise(noise_model.system_gain(CALIB, 1600), 0.0, 2.0, 1.5, NO_BIAS)
    height, width = 2048, 256
    dark = frame(noise, np.zeros((height, width)))
    pixel = read_variance(noise) + QUANTISATION_VARIANCE
    assert dark.mean(axis=1).var() == pytest.approx(noise.row_scale ** 2 + pixel / width, rel=0.1)
    assert dark.mean(axis=0).var() == pytest.approx(pixel / height, rel=0.2)


def test_colour_bias_shifts_each_bayer_channel_black_level():
    bias = CALIB.color_bias[-1]  # the largest measured: about 4 DN
    noise = noise_model.FrameNoise(noise_model.system_gain(CALIB, 400), 0.0, 1.0, 0.2, bias)
    dark = frame(noise, np.zeros((512, 512)))
    for value, (y, x) in zip(bias, raw_io.BAYER_OFFSETS):
        assert dark[y::2, x::2].mean() == pytest.approx(value, abs=0.05)


def test_frame_parameters_follow_elds_log_linear_fits_and_measured_lists():
    rng = np.random.default_rng(3)
    frames = [noise_model.draw_frame_noise(rng, CALIB, 800) for _ in range(3000)]
    log_k = np.log(noise_model.system_gain(CALIB, 800))
    for fit, values in ((CALIB.tl_scale, [f.tl_scale for f in frames]),
                        (CALIB.row_scale, [f.row_scale for f in frames])):
        logs = np.log(values)
        assert logs.mean() == pytest.approx(fit.slope * log_k + fit.bias, abs=0.02)
        assert logs.std() == pytest.approx(fit.sigma, rel=0.05)
    assert {f.tl_shape for f in frames} == set(CALIB.tl_shapes)
    assert {f.color_bias for f in frames} == set(CALIB.color_bias)
    assert {f.gain for f in frames} == {noise_model.system_gain(CALIB, 800)}


def test_the_same_seed_gives_the_same_frame():
    noise = noise_model.draw_frame_noise(np.random.default_rng(5), CALIB, 1600)
    signal = np.linspace(0, 80, 40 * 60).reshape(40, 60)
    assert np.array_equal(frame(noise, signal, seed=2), frame(noise, signal, seed=2))
    assert not np.array_equal(frame(noise, signal, seed=2), frame(noise, signal, seed=3))
    again = noise_model.draw_frame_noise(np.random.default_rng(5), CALIB, 1600)
    assert again == noise


def test_counts_are_clipped_to_the_14_bit_range():
    noise = noise_model.draw_frame_noise(np.random.default_rng(0), CALIB, 6400)
    counts = noise_model.noisy_counts(np.random.default_rng(0), np.full((8, 8), 1e6), noise,
                                      BLACK, WHITE)
    assert counts.dtype == np.uint16 and counts.max() == WHITE


@pytest.mark.parametrize('camera, isos, ratios, message', [
    ('fuji', (), (), "no calibrated noise model for --camera=fuji: ELD's calibration here is the "
                     "Sony A7S II's (--camera=sony); use --scenes=shapes"),
    ('sony', (100, 12800), (), 'ISO 12800 is outside the Sony A7S II (ELD SonyA7S2) noise '
                               'calibration (ISOs 100 to 6400)'),
    ('sony', (50,), (), 'ISO 50 is outside the Sony A7S II (ELD SonyA7S2) noise calibration '
                        '(ISOs 100 to 6400)'),
    ('sony', (800,), (250, 50), 'ratio 50 is outside the Sony A7S II (ELD SonyA7S2) noise '
                                'calibration (ratios 100 to 300)'),
])
def test_what_the_calibration_does_not_cover_is_a_one_line_error(camera, isos, ratios, message):
    with pytest.raises(cli.SidError) as error:
        noise_model.calibration(camera, isos, ratios)
    assert str(error.value) == message
    assert noise_model.calibration('sony', (100, 6400), (100, 300)) is CALIB
