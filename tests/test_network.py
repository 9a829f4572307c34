"""network.py: the released checkpoint's variables, odd sizes, and the forward pass vs NumPy."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import network

tf.disable_v2_behavior()

# The authors' released Sony checkpoint, written out independently of network.py.
RELEASED = {}
for _level, (_cin, _c) in enumerate([(4, 32), (32, 64), (64, 128), (128, 256), (256, 512)], 1):
    RELEASED.update({'g_conv%d_1/weights' % _level: (3, 3, _cin, _c),
                     'g_conv%d_2/weights' % _level: (3, 3, _c, _c),
                     'g_conv%d_1/biases' % _level: (_c,), 'g_conv%d_2/biases' % _level: (_c,)})
for _level, _name, (_cin, _c) in zip(range(6, 10), ['Variable', 'Variable_1', 'Variable_2',
                                                    'Variable_3'],
                                     [(512, 256), (256, 128), (128, 64), (64, 32)]):
    RELEASED.update({_name: (2, 2, _c, _cin), 'g_conv%d_1/weights' % _level: (3, 3, 2 * _c, _c),
                     'g_conv%d_2/weights' % _level: (3, 3, _c, _c),
                     'g_conv%d_1/biases' % _level: (_c,), 'g_conv%d_2/biases' % _level: (_c,)})
RELEASED.update({'g_conv10/weights': (1, 1, 32, 12), 'g_conv10/biases': (12,)})
# The released Fuji checkpoint: the same 42 tensors, but 9 packed X-Trans channels in and
# 27 = 3 x 3 x 3 channels before depth_to_space with block 3.
RELEASED_FUJI = dict(RELEASED)
RELEASED_FUJI.update({'g_conv1_1/weights': (3, 3, 9, 32), 'g_conv10/weights': (1, 1, 32, 27),
                      'g_conv10/biases': (27,)})
FUJI_BLOCK = 3
# Data-file sizes of the released checkpoints (one float32 shard each).
RELEASED_DATA_BYTES = {'sony': 87552664, 'fuji': 87575884}


def build(shape=(None, None, None, 4), **unet_args):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, shape)
        y = network.unet(x, **unet_args)
    return graph, x, y


def build_fuji():
    return build((None, None, None, 9), block=FUJI_BLOCK)


def test_variables_match_the_released_checkpoint():
    graph, _, _ = build()
    with graph.as_default():
        found = {v.op.name: tuple(v.shape.as_list()) for v in tf.global_variables()}
        assert {v.op.name for v in network.model_variables()} == set(RELEASED)
    assert found == RELEASED
    # 31.0 MB of float32 gradients per step
    assert sum(np.prod(s) for s in RELEASED.values()) == 7760268


def test_model_variables_leave_out_optimizer_slots_and_counters():
    graph, x, y = build()
    with graph.as_default():
        step = tf.train.get_or_create_global_step()
        tf.train.AdamOptimizer(1e-4).minimize(tf.reduce_mean(y), global_step=step)
        assert len(tf.global_variables()) > 3 * len(RELEASED)  # two Adam slots per variable
        assert sorted(v.op.name for v in network.model_variables()) == sorted(RELEASED)


def test_a_plain_saver_restores_a_checkpoint_with_the_released_names(tmp_path):
    released = tf.Graph()
    values = {name: np.random.default_rng(len(name)).normal(size=shape).astype(np.float32)
              for name, shape in RELEASED.items()}
    with released.as_default():  # what the authors' code saved: bare names, no optimizer slots
        variables = [tf.Variable(v, name=n) for n, v in values.items()]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            prefix = tf.train.Saver(variables).save(sess, str(tmp_path / 'model.ckpt'))
    graph, _, _ = build()
    with graph.as_default(), tf.Session() as sess:
        tf.train.Saver().restore(sess, prefix)
        for v in tf.global_variables():
            np.testing.assert_array_equal(sess.run(v), values[v.op.name])


def test_initialisers_follow_tf_slim_and_the_original_upconv():
    graph, _, _ = build()
    with graph.as_default(), tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        values = {v.op.name: sess.run(v) for v in tf.global_variables()}
    for name, v in values.items():
        if name.endswith('biases'):
            assert not v.any()
        elif name.startswith('Variable'):  # truncated normal, stddev 0.02: nothing past 2 sigma
            assert np.abs(v).max() <= 0.04 and 0.012 < v.std() < 0.02
        else:  # Glorot uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out))
            k = v.shape[0] * v.shape[1]
            limit = np.sqrt(6.0 / (k * v.shape[2] + k * v.shape[3])) * (1 + 1e-6)  # float32
            assert np.abs(v).max() <= limit and np.abs(v).max() > 0.9 * limit


SIZES = [(22, 34), (16, 16), (178, 266), (46, 30)]


@pytest.mark.parametrize('channels,block', [(4, 2), (9, FUJI_BLOCK)], ids=['sony', 'fuji'])
@pytest.mark.parametrize('height,width', SIZES)
def test_any_size_gives_block_times_the_size_in_rgb(channels, block, height, width):
    """Sony: 4 packed channels, twice the size; Fuji: 9, three times (depth_to_space(3))."""
    graph, x, y = build((None, None, None, channels), block=block)
    with graph.as_default(), tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out = sess.run(y, {x: np.zeros((2, height, width, channels), np.float32)})
    assert out.shape == (2, block * height, block * width, 3)


# ---------------------------------------------------------------- Fuji X-Trans: 9 in, block 3

def released_layout(table):
    """{name: shape} of a released checkpoint: the model, Adam slots for g_conv* only, and the
    two beta powers (the authors' run optimised only the g_* variables)."""
    layout = dict(table)
    for name, shape in table.items():
        if name.startswith('g_conv'):
            layout.update({name + '/Adam': shape, name + '/Adam_1': shape})
    layout.update({'beta1_power': (), 'beta2_power': ()})
    return layout


def test_fuji_variables_match_the_released_fuji_checkpoint():
    graph, _, _ = build_fuji()
    with graph.as_default():
        found = {v.op.name: tuple(v.shape.as_list()) for v in tf.global_variables()}
        assert {v.op.name for v in network.model_variables()} == set(RELEASED_FUJI)
    assert found == RELEASED_FUJI and len(found) == 42
    # Only the first conv and the last 1x1 conv differ from Sony.
    assert sorted(n for n in RELEASED if RELEASED[n] != found[n]) == [
        'g_conv10/biases', 'g_conv10/weights', 'g_conv1_1/weights']


@pytest.mark.parametrize('camera,table,channels,block', [
    ('sony', RELEASED, 4, 2), ('fuji', RELEASED_FUJI, 9, FUJI_BLOCK)])
def test_graph_variables_laid_out_as_released_fill_the_released_data_file(camera, table, channels,
                                                                          block):
    graph, _, _ = build((None, None, None, channels), block=block)
    with graph.as_default():
        found = {v.op.name: tuple(v.shape.as_list()) for v in tf.global_variables()}
    assert found == table
    floats = sum(int(np.prod(s)) for s in released_layout(found).values())
    assert len(released_layout(found)) == 120 and 4 * floats == RELEASED_DATA_BYTES[camera]


def test_a_plain_saver_restores_a_checkpoint_with_the_released_fuji_names(tmp_path):
    layout = released_layout(RELEASED_FUJI)
    rng = np.random.default_rng(9)
    values = {n: rng.normal(size=s).astype(np.float32) for n, s in layout.items()}
    released = tf.Graph()
    with released.as_default():  # the authors' file: model, Adam slots, beta powers
        variables = {n: tf.Variable(v, name=n.replace('/', '_')) for n, v in values.items()}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            prefix = tf.train.Saver(variables).save(sess, str(tmp_path / 'model.ckpt'))
    assert (tmp_path / 'model.ckpt.data-00000-of-00001').stat().st_size == \
        RELEASED_DATA_BYTES['fuji']
    graph, _, _ = build_fuji()
    with graph.as_default(), tf.Session() as sess:
        tf.train.Saver().restore(sess, prefix)
        restored = {v.op.name: sess.run(v) for v in tf.global_variables()}
    assert set(restored) == set(RELEASED_FUJI)
    for name, value in restored.items():
        np.testing.assert_array_equal(value, values[name])


@pytest.mark.parametrize('channels,block', [(9, 2), (4, 3), (12, 2)])
def test_packed_channels_must_match_the_block(channels, block):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, (None, None, None, channels))
        with pytest.raises(ValueError, match='block of %d needs %d packed channels, got %d'
                           % (block, block * block, channels)):
            network.unet(x, block=block)
        assert not tf.global_variables()  # refused before building anything


# ---------------------------------------------------------------- independent NumPy U-Net

def np_conv(x, w, b):
    """SAME, stride 1 convolution of [H, W, C] by [k, k, C, O]."""
    k = w.shape[0]
    pad = k // 2
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    h, wd = x.shape[:2]
    out = np.zeros((h, wd, w.shape[3]))
    for dy in range(k):
        for dx in range(k):
            out += xp[dy:dy + h, dx:dx + wd] @ w[dy, dx]
    return out + b


def np_lrelu(x):
    return np.maximum(0.2 * x, x)


def np_pool(x):
    """2x2 max-pool, stride 2, SAME: odd edges pool over the single remaining row/column."""
    h, w = x.shape[:2]
    xp = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=-np.inf)
    return xp.reshape(xp.shape[0] // 2, 2, xp.shape[1] // 2, 2, -1).max(axis=(1, 3))


def np_upconv(x, w, out_hw):
    """Transposed 2x2 stride-2 conv ([2, 2, O, C] filter) cropped to the skip's size."""
    h, wd = x.shape[:2]
    out = np.zeros((2 * h, 2 * wd, w.shape[2]))
    for dy in range(2):
        for dx in range(2):
            out[dy::2, dx::2] = x @ w[dy, dx].T
    return out[:out_hw[0], :out_hw[1]]


def np_depth_to_space(x, block=2):
    """TF's layout: output (block h + i, block w + j, c) = input (h, w, (i block + j) C + c)."""
    h, w, c = x.shape
    out = c // (block * block)
    return x.reshape(h, w, block, block, out).transpose(0, 2, 1, 3, 4).reshape(
        block * h, block * w, out)


def np_unet(x, p, block=2):
    skips = []
    for level in range(1, 6):
        x = np_lrelu(np_conv(x, p['g_conv%d_1/weights' % level], p['g_conv%d_1/biases' % level]))
        x = np_lrelu(np_conv(x, p['g_conv%d_2/weights' % level], p['g_conv%d_2/biases' % level]))
        if level < 5:
            skips.append(x)
            x = np_pool(x)
    for level, name in zip(range(6, 10), ['Variable', 'Variable_1', 'Variable_2', 'Variable_3']):
        skip = skips.pop()
        x = np.concatenate([np_upconv(x, p[name], skip.shape[:2]), skip], axis=2)
        x = np_lrelu(np_conv(x, p['g_conv%d_1/weights' % level], p['g_conv%d_1/biases' % level]))
        x = np_lrelu(np_conv(x, p['g_conv%d_2/weights' % level], p['g_conv%d_2/biases' % level]))
    return np_depth_to_space(np_conv(x, p['g_conv10/weights'], p['g_conv10/biases']), block)


def random_params(table, rng):
    """Random weights scaled to keep activations O(1) through 23 layers; random biases too."""
    params = {}
    for name, shape in table.items():
        if 'biases' in name:
            scale = 0.1
        else:  # conv: fan-in is k*k*C_in; transposed conv [2, 2, out, in]: 4 taps of C_in / 4
            fan_in = np.prod(shape[:-1]) if 'weights' in name else shape[3]
            scale = np.sqrt(2.0 / fan_in)
        params[name] = rng.normal(0, scale, size=shape).astype(np.float32)
    return params


def test_forward_pass_matches_an_independent_numpy_unet():
    rng = np.random.default_rng(1)
    params = random_params(RELEASED, rng)
    x = rng.uniform(0, 1, size=(1, 22, 34, 4)).astype(np.float32)  # odd sizes at levels 2-4
    graph, xin, y = build()
    with graph.as_default(), tf.Session() as sess:
        for v in tf.global_variables():
            v.load(params[v.op.name], sess)
        out = sess.run(y, {xin: x})[0]
    params64 = {k: v.astype(np.float64) for k, v in params.items()}
    expected = np_unet(x[0].astype(np.float64), params64)
    assert out.shape == expected.shape == (44, 68, 3)
    assert np.abs(expected).mean() > 0.1  # a non-trivial output
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_fuji_forward_pass_matches_the_numpy_unet_with_block_3():
    rng = np.random.default_rng(3)
    params = random_params(RELEASED_FUJI, rng)
    x = rng.uniform(0, 1, size=(1, 22, 34, 9)).astype(np.float32)
    graph, xin, y = build_fuji()
    with graph.as_default(), tf.Session() as sess:
        for v in tf.global_variables():
            v.load(params[v.op.name], sess)
        out = sess.run(y, {xin: x})[0]
    expected = np_unet(x[0].astype(np.float64),
                       {k: v.astype(np.float64) for k, v in params.items()}, FUJI_BLOCK)
    assert out.shape == expected.shape == (66, 102, 3)
    assert np.abs(expected).mean() > 0.1
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
