"""inference: tiles cover the image on pooling-aligned contexts and give the untiled result, the
integer conversions, models from a checkpoint or a frozen graph, the memory settings."""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import bench_inference
import camera
import cli
import inference
import network


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A checkpoint with network.py's names (as the released model) and weights that matter."""
    folder = tmp_path_factory.mktemp('ckpt')
    bench_inference.make_checkpoint(str(folder / 'model.ckpt'), seed=1)
    return folder


@pytest.fixture(scope='module')
def fuji_checkpoint(tmp_path_factory):
    """The same for the Fuji U-Net: 9 packed channels in, depth_to_space(3)."""
    folder = tmp_path_factory.mktemp('fuji_ckpt')
    bench_inference.make_checkpoint(str(folder / 'model.ckpt'), seed=2, profile=camera.FUJI)
    return folder


def smooth_noisy_input(size, seed=0, channels=4):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[:size, :size] / 9.0
    scene = 0.4 + 0.3 * np.sin(x + y)[..., None] + rng.normal(0, 0.1, (size, size, channels))
    return np.clip(scene, 0, 1).astype(np.float32)


def test_align_is_the_networks_pooling_factor():
    assert inference.ALIGN == 2 ** (len(network.ENCODER_CHANNELS) - 1)


@pytest.mark.parametrize('length,tile,overlap', [(1424, 768, 64), (2128, 512, 96), (68, 16, 32),
                                                 (48, 16, 16), (100, 0, 64), (48, 64, 16)])
def test_tile_spans_cover_the_axis_on_pooling_aligned_contexts(length, tile, overlap):
    spans = inference.tile_spans(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (start, end, ctx_start, ctx_end), following in zip(spans, spans[1:] + [None]):
        assert start < end and (following is None or following[0] == end)  # disjoint cover
        assert start % inference.ALIGN == 0 and ctx_start % inference.ALIGN == 0
        assert ctx_start == max(0, start - overlap) and ctx_end == min(length, end + overlap)
    if 0 < tile < length:
        assert len(spans) == -(-length // tile)  # as few tiles as the size allows
    assert inference.tile_count(length, length, tile, overlap) == len(spans) ** 2


def test_to_uint_rounds_half_up_and_clips_at_both_depths():
    x = np.array([-0.5, 0.0, 0.5 / 255, 0.499 / 255, 0.5, 1.0, 1.5], np.float32)
    assert inference.to_uint(x).tolist() == [0, 0, 1, 0, 128, 255, 255]
    assert inference.to_uint(x, np.uint16).tolist() == [0, 0, 129, 128, 32768, 65535, 65535]


@pytest.mark.parametrize('profile', [camera.SONY, camera.FUJI], ids=lambda p: p.name)
def test_tiled_output_within_one_level_of_untiled(request, profile):
    """Tiles whose inner edges have exactly the default overlap of context, not the image border.
    The overlap is in packed pixels for both cameras; the stitching in output pixels (block)."""
    checkpoint = request.getfixturevalue({'Sony': 'checkpoint', 'Fuji': 'fuji_checkpoint'}[
        profile.name])
    tile = 128
    size = tile + inference.DEFAULT_TILE_OVERLAP + 32  # 2x2 tiles, contexts clipped only outside
    packed = smooth_noisy_input(size, channels=profile.channels)
    assert len(inference.tile_spans(size, tile, inference.DEFAULT_TILE_OVERLAP)) == 2
    model = inference.session_from_checkpoint(str(checkpoint), profile=profile)
    calls = []
    block = profile.block
    with model.session as sess:
        def run(**options):
            return inference.run_network(sess, model.input, model.output, packed, block=block,
                                         **options)
        whole, whole16 = run(tile=0, dtypes=(np.uint8, np.uint16))
        tiled, tiled16 = run(tile=tile, dtypes=(np.uint8, np.uint16),
                             on_tile=lambda: calls.append(1))
        no_overlap, = run(tile=tile, overlap=0)
        floats = sess.run(model.output, {model.input: packed[None]})[0]
    assert len(calls) == 4
    assert whole.shape == whole16.shape == (block * size, block * size, 3)
    np.testing.assert_array_equal(whole, inference.to_uint(floats))
    np.testing.assert_array_equal(whole16, inference.to_uint(floats, np.uint16))
    whole = whole.astype(np.int16)
    assert 20 < whole.mean() < 235 and whole.std() > 20  # the weights produce a real image
    diff = np.abs(tiled - whole)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert np.abs(tiled16.astype(np.int32) - whole16).max() <= 257
    assert np.abs(no_overlap - whole).max() > 10  # the test can see tiling seams


def test_models_from_a_checkpoint_and_from_a_frozen_graph_agree(tmp_path, checkpoint):
    packed = smooth_noisy_input(48)[None]
    model = inference.session_from_checkpoint(str(checkpoint))
    assert model.source == str(checkpoint / 'model.ckpt')
    assert model.input.name == inference.INPUT_NAME + ':0'
    with model.session as sess:
        reference = sess.run(model.output, {model.input: packed})
        frozen = tf.graph_util.convert_variables_to_constants(
            sess, sess.graph.as_graph_def(), [inference.OUTPUT_NAME])
    path = str(tmp_path / 'sid.pb')
    with open(path, 'wb') as f:
        f.write(frozen.SerializeToString())
    model = inference.session_from_graph(path)
    with model.session as sess:
        assert sess.run(model.output, {model.input: packed}).tobytes() == reference.tobytes()


def test_a_model_of_the_other_camera_is_refused_naming_its_camera(checkpoint, fuji_checkpoint):
    with pytest.raises(cli.SidError) as error:
        inference.session_from_checkpoint(str(fuji_checkpoint))
    assert str(error.value) == (
        '%s: variable g_conv1_1/weights has shape [3, 3, 9, 32] in the checkpoint, the network '
        'needs [3, 3, 4, 32]: a model for Fuji raws (9 packed channels), not for Sony/bayer (4)'
        % (fuji_checkpoint / 'model.ckpt'))
    with pytest.raises(cli.SidError, match='a model for Sony/bayer raws .4 packed channels.,'
                       ' not for Fuji .9.$'):
        inference.session_from_checkpoint(str(checkpoint), profile=camera.FUJI)
    model = inference.session_from_checkpoint(str(checkpoint))
    with model.session as sess, pytest.raises(cli.SidError, match='not 3 times that'):
        inference.run_network(sess, model.input, model.output, smooth_noisy_input(32), block=3)


def test_unusable_models_are_refused_in_one_line(tmp_path):
    with pytest.raises(cli.SidError, match='no checkpoint found'):
        inference.session_from_checkpoint(str(tmp_path))
    junk = tmp_path / 'junk.pb'
    junk.write_bytes(b'\xff' * 64)
    with pytest.raises(cli.SidError, match='junk.pb: not a readable frozen graph'):
        inference.session_from_graph(str(junk))
    other = tmp_path / 'other.pb'
    with tf.Graph().as_default() as graph:
        tf.identity(tf.constant(1.0), name='something')
        other.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(cli.SidError, match='other.pb: the graph has no tensors named input'):
        inference.session_from_graph(str(other))
    with pytest.raises(cli.SidError, match='missing.pb: not a readable frozen graph'):
        inference.session_from_graph(str(tmp_path / 'missing.pb'))


def test_default_overlap_covers_the_receptive_field_tightly():
    """The exactness argument of DEFAULT_TILE_OVERLAP, recomputed: 94 packed pixels -> 96."""
    need = bench_inference.receptive_field_context()
    assert need <= inference.DEFAULT_TILE_OVERLAP < need + inference.ALIGN


def test_system_allocator_is_the_default_but_the_user_decides(monkeypatch):
    """Inference asks oneDNN for malloc instead of its BFC pool, unless the variable is set."""
    monkeypatch.delenv(inference.ONEDNN_SYSTEM_ALLOCATOR_ENV, raising=False)
    inference.use_system_allocator()
    assert os.environ[inference.ONEDNN_SYSTEM_ALLOCATOR_ENV] == '1'
    monkeypatch.setenv(inference.ONEDNN_SYSTEM_ALLOCATOR_ENV, '0')
    inference.use_system_allocator()
    assert os.environ[inference.ONEDNN_SYSTEM_ALLOCATOR_ENV] == '0'


def test_importing_inference_does_not_load_tensorflow():
    """Scripts define flags from it and refuse bad input before TensorFlow's start-up."""
    import subprocess
    import sys
    code = 'import sys, inference; print("tensorflow" in sys.modules)'
    out = subprocess.check_output([sys.executable, '-c', code], universal_newlines=True,
                                  cwd=os.path.dirname(os.path.abspath(inference.__file__)))
    assert out.strip() == 'False'


# ---------------------------------------------------------------- fixed windows (the NPU)

@pytest.mark.parametrize('length,window', [(1424, 1264), (2128, 1264), (1344, 1264), (2010, 1264),
                                           (48, 224), (300, 224), (224, 224)])
def test_window_spans_cover_the_axis_with_one_window_size(length, window):
    """Sony frames (1424 x 2128) with the validation window; Fuji's 1344 x 2010; small images."""
    overlap = inference.DEFAULT_TILE_OVERLAP
    spans = inference.window_spans(length, window, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (start, end, at), following in zip(spans, spans[1:] + [None]):
        assert start < end and (following is None or following[0] == end)
        assert at % inference.ALIGN == 0 and at <= max(0, start - overlap)
        assert at + window >= min(length, end + overlap)  # the core's context is in the window
        if length >= window:
            assert at + window <= length + inference.ALIGN - 1  # padded by less than ALIGN
    assert inference.window_exact((length, length), (window, window)) == (
        length >= window and (length - window) % inference.ALIGN == 0)


def test_a_window_too_small_for_its_context_is_refused():
    with pytest.raises(cli.SidError, match='do not fit 160-px windows with 96 px of context'):
        inference.window_spans(300, 160, inference.DEFAULT_TILE_OVERLAP)


class ShapeRecorder(object):
    """A session that remembers the input shapes it was fed."""

    def __init__(self, sess, placeholder):
        self.sess, self.placeholder, self.shapes = sess, placeholder, set()

    def run(self, fetches, feed_dict):
        self.shapes.add(feed_dict[self.placeholder].shape)
        return self.sess.run(fetches, feed_dict)


def test_fixed_windows_are_one_shape_and_the_untiled_result_unless_padded(checkpoint):
    """What the NPU is fed: every tile at one window shape. Without padding (sides a multiple of
    16 from the window, as a Sony frame) the result is the untiled one, as tiles are; padded,
    it differs only within reach of the padded border."""
    overlap = inference.DEFAULT_TILE_OVERLAP
    window = inference.fixed_window(128, overlap, None)
    assert window == (320, 320)
    model = inference.session_from_checkpoint(str(checkpoint))
    with model.session as sess:
        for size, exact in ((384, True), (392, False)):
            packed = smooth_noisy_input(size)
            whole, = inference.run_network(sess, model.input, model.output, packed)
            recorder = ShapeRecorder(sess, model.input)
            fixed, = inference.run_network(recorder, model.input, model.output, packed,
                                           window=window)
            assert recorder.shapes == {(1, 320, 320, 4)}
            assert inference.tile_count(size, size, 0, overlap, window) == (-(-size // 128)) ** 2
            assert inference.window_exact(packed.shape, window) == exact
            diff = np.abs(fixed.astype(np.int16) - whole)
            if exact:
                assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
            else:
                assert diff.max() > 1
                far = 2 * (size - 2 * overlap)  # output pixels out of the padding's reach
                assert np.abs(fixed[:far, :far].astype(np.int16) - whole[:far, :far]).max() <= 1
    assert inference.fixed_window(0, overlap, (1424, 2128, 4)) == (1424, 2128)
    assert inference.fixed_window(0, overlap, (48, 68, 4)) == (48, 80)
