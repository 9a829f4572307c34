"""The SID U-Net (Chen et al., CVPR 2018, Sec. 3.2), built once for both cameras, for training,
testing and tools.

The camera sets two numbers: the packed input's channels (Sony Bayer 4, Fuji X-Trans 9) and the
depth_to_space block that turns the last 1x1 conv's 3 * block * block channels back into RGB at
the raw resolution (Sony 2 -> 12 channels, Fuji 3 -> 27). Everything else is one graph.

Variable names and shapes match the authors' released Sony and Fuji checkpoints, so a plain
`tf.compat.v1.train.Saver` restores either: convolutions live in scopes `g_conv1_1` ... `g_conv10`
as `weights` / `biases` (TF-Slim's names), and the four transposed-convolution filters are the
root-level `Variable`, `Variable_1`, `Variable_2`, `Variable_3` (up6 .. up9), the names the
original code got from unnamed `tf.Variable`s.
"""
import re

import cli

tf = cli.import_tensorflow()  # quietly, in graph mode, whoever imports this first

ENCODER_CHANNELS = (32, 64, 128, 256, 512)
OUTPUT_CHANNELS = 3
BLOCK = 2  # Sony's depth_to_space factor (packed 2x2 Bayer cell -> 2x2 RGB); Fuji X-Trans uses 3
LEAK = 0.2
UPCONV_STDDEV = 0.02
UPCONV_NAMES = ('Variable', 'Variable_1', 'Variable_2', 'Variable_3')
INPUT_WEIGHTS = 'g_conv1_1/weights'  # [3, 3, packed channels, 32]: which camera a model is for
# Exactly the layers' names: optimizer slots such as g_conv1_1/weights/Adam must not match.
MODEL_VARIABLE_RE = re.compile(r'^(g_conv\d+(_\d+)?/(weights|biases)|Variable(_[123])?)$')


def lrelu(x):
    """Leaky ReLU written as the original (max(0.2x, x)), which fuses well on every backend."""
    return tf.maximum(x * LEAK, x)


def conv(x, channels, kernel, scope, activation=lrelu):
    """3x3 (or 1x1) SAME convolution with TF-Slim's defaults: Glorot-uniform weights, zero bias."""
    with tf.variable_scope(scope):
        weights = tf.get_variable(
            'weights', [kernel, kernel, int(x.shape[-1]), channels], dtype=tf.float32,
            initializer=tf.glorot_uniform_initializer())
        biases = tf.get_variable('biases', [channels], dtype=tf.float32,
                                 initializer=tf.zeros_initializer())
        y = tf.nn.bias_add(tf.nn.conv2d(x, weights, [1, 1, 1, 1], 'SAME'), biases)
    return activation(y) if activation is not None else y


def upsample_and_concat(x, skip, name):
    """2x2 stride-2 transposed conv to the skip's exact shape, then concat with the skip.

    Targeting tf.shape(skip) instead of 2x the input is what lets odd sizes (89 -> 178 -> 356 at
    1424 rows, or 3 -> 6 at 22) round-trip through the SAME max-pools.
    """
    channels, in_channels = int(skip.shape[-1]), int(x.shape[-1])
    kernel = tf.get_variable(name, [2, 2, channels, in_channels], dtype=tf.float32,
                             initializer=tf.truncated_normal_initializer(stddev=UPCONV_STDDEV))
    up = tf.nn.conv2d_transpose(x, kernel, tf.shape(skip), [1, 2, 2, 1], padding='SAME')
    out = tf.concat([up, skip], axis=3)
    out.set_shape([None, None, None, 2 * channels])
    return out


def unet(packed, block=BLOCK, reuse=tf.AUTO_REUSE):
    """[N, H, W, block^2] packed, amplified raw -> [N, block H, block W, 3] sRGB estimate.

    A packed pixel holds one block x block cell of raw sites (Sony 2x2 -> 4 channels, Fuji X-Trans
    3x3 -> 9), so the channel count must be block^2: a Fuji input wired to Sony's block would
    otherwise build a valid graph with the wrong output size.
    """
    in_channels = packed.shape.as_list()[-1]
    if in_channels != block * block:
        raise ValueError('unet: a depth_to_space block of %d needs %d packed channels, got %s'
                         % (block, block * block, in_channels))
    with tf.variable_scope(tf.get_variable_scope(), reuse=reuse):
        x, skips = packed, []
        for level, channels in enumerate(ENCODER_CHANNELS, 1):
            x = conv(x, channels, 3, 'g_conv%d_1' % level)
            x = conv(x, channels, 3, 'g_conv%d_2' % level)
            if level < len(ENCODER_CHANNELS):
                skips.append(x)
                x = tf.nn.max_pool2d(x, [1, 2, 2, 1], [1, 2, 2, 1], 'SAME')
        decoder_channels = ENCODER_CHANNELS[-2::-1]  # 256, 128, 64, 32
        for i, channels in enumerate(decoder_channels):
            level = len(ENCODER_CHANNELS) + 1 + i  # 6 .. 9
            x = upsample_and_concat(x, skips.pop(), UPCONV_NAMES[i])
            x = conv(x, channels, 3, 'g_conv%d_1' % level)
            x = conv(x, channels, 3, 'g_conv%d_2' % level)
        x = conv(x, OUTPUT_CHANNELS * block * block, 1, 'g_conv10', activation=None)
        return tf.nn.depth_to_space(x, block)


def model_variables(graph=None):
    """The U-Net's own variables (no optimizer slots, no step counters): what a checkpoint of
    the released model holds and what --finetune_from restores."""
    graph = graph or tf.get_default_graph()
    return [v for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
            if MODEL_VARIABLE_RE.match(v.op.name)]
