"""Full-resolution inference with the SID U-Net, once for every caller: test_Sony.py, the enhance
command (scripts/enhance.py), the model export and validation.

A packed, amplified raw goes through the network whole or in square tiles. Tiles bound memory by
the tile size instead of the image size and, with the default overlap, give the untiled result
(see DEFAULT_TILE_OVERLAP and tile_spans): on a 2848 x 4256 frame on a CPU, --tile=1072 (2 x 2
tiles) takes 1.23x the untiled time at 1.1 GB instead of 2.1 GB (scripts/bench/bench_inference.py).

TensorFlow is imported by the functions that build graphs, not by this module, so scripts can
define their flags from it and answer --help or refuse bad input without TensorFlow's start-up.
"""
import math
import os
import sys
from collections import namedtuple

import numpy as np

import camera
import cli
import raw_io

# The U-Net's four 2x2 max-pools (network.ENCODER_CHANNELS has five levels; tests/test_inference.py
# keeps the two in step): tiles must start on a multiple of 16 packed pixels so every pooling
# window in a tile is also a pooling window of the whole image. Tiles, overlaps and the receptive
# field below are in packed pixels, for every camera; the output is the camera's block (Sony 2,
# Fuji 3) times that.
POOLINGS = 4
ALIGN = 2 ** POOLINGS
# On a 16-aligned grid an output pixel depends on input up to 94 packed pixels beyond its tile's
# core (scripts/bench/bench_inference.py --receptive_field: an impulse through all-positive
# weights), so with 96 of context every kept output pixel sees exactly the input it sees
# untiled: tiled == untiled for any weights, up to float summation order (bitwise equal on the
# CPU here). Less is not safe: with 64, outputs differ by up to 10-19 levels near tile edges.
DEFAULT_TILE_OVERLAP = 96
BLOCK_ROWS = 256  # output rows converted to integers at a time: no full-size float temporaries
# Names of the input placeholder and the clipped output, in built and in exported graphs.
INPUT_NAME, OUTPUT_NAME = 'input', 'output'
M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES = -3, 4 << 20  # glibc mallopt, see return_freed_memory_to_os
# TF's oneDNN CPU builds (x86 Linux, TF >= 2.9) serve tensors from a BFC pool that grows in doubling
# regions and never shrinks; its fragmentation cost more RSS than the live tensors' own peak. This
# variable (read lazily, at the first allocation; unknown to and ignored by TF 1.15) makes oneDNN
# use plain malloc, so freed activations go back to the OS. See use_system_allocator.
ONEDNN_SYSTEM_ALLOCATOR_ENV = 'TF_ONEDNN_USE_SYSTEM_ALLOCATOR'

# A ready network: its session, input placeholder and output tensor, and where it came from.
Model = namedtuple('Model', 'session input output source')


def define_tile_flags(default_tile=0):
    from absl import flags
    flags.DEFINE_integer('tile', default_tile, 'tile size in packed pixels (x2 in output pixels '
                         'for Sony, x3 for Fuji), a multiple of %d; 0 runs the whole image at '
                         'once' % ALIGN)
    flags.DEFINE_integer('tile_overlap', DEFAULT_TILE_OVERLAP, 'context added around each tile, '
                         'in packed pixels (a multiple of %d)' % ALIGN)
    flags.register_validator('tile', lambda v: v >= 0 and v % ALIGN == 0,
                             message='--tile must be 0 or a positive multiple of %d' % ALIGN)
    flags.register_validator('tile_overlap', lambda v: v >= 0 and v % ALIGN == 0,
                             message='--tile_overlap must be a non-negative multiple of %d' % ALIGN)


def tile_spans(length, tile, overlap):
    """[(core_start, core_end, context_start, context_end)] covering [0, length) along one axis.

    Cores are disjoint, about equal, and start on multiples of ALIGN; the network sees each core
    with `overlap` pixels of real image around it (clipped at the image border) and only the core
    of its output is kept. Inside a core, pooling windows are those of the whole image and the zero
    padding at a context edge is `overlap` pixels away, so the output differs from the untiled
    one only by what the U-Net draws from beyond that distance.
    """
    if tile <= 0 or length <= tile:
        return [(0, length, 0, length)]
    count = int(math.ceil(length / float(tile)))
    size = int(math.ceil(math.ceil(length / float(count)) / ALIGN)) * ALIGN
    spans = []
    for start in range(0, length, size):
        end = min(length, start + size)
        spans.append((start, end, max(0, start - overlap), min(length, end + overlap)))
    return spans


def to_uint(x, dtype=np.uint8):
    """[0, 1] float -> integers of dtype: scale to its maximum, clip, round half up.

    For 8 bits this is scipy.misc.toimage(x * 255, cmin=0, cmax=255), the official code's PNGs.
    """
    top = np.float32(np.iinfo(dtype).max)
    y = np.multiply(x, top, dtype=np.float32)  # the only temporary
    np.clip(y, 0, top, out=y)
    y += np.float32(0.5)
    return y.astype(dtype)


def postprocessed_to_uint8(rgb16, gain=1.0):
    """8-bit PNG content of rgb16 / 65535 * gain, a block of rows at a time.

    With gain 1 this is exactly to_uint(raw_io.read_ground_truth(...)), without the two
    full-size float32 copies (145 MB each at 2848 x 4256) that would stack on TF's memory pool.
    """
    out = np.empty(rgb16.shape, np.uint8)
    rows = BLOCK_ROWS
    for top in range(0, rgb16.shape[0], rows):
        block = rgb16[top:top + rows].astype(np.float32) / np.float32(raw_io.GT_SCALE)
        if gain != 1.0:
            block *= np.float32(gain)
        out[top:top + rows] = to_uint(block)
    return out


def build_network(profile=camera.SONY, height=None, width=None):
    """Input placeholder [1, height, width, profile.channels] (None: any size) and the [0, 1]
    output [1, block height, block width, 3]."""
    tf = cli.import_tensorflow()
    import network
    packed = tf.placeholder(tf.float32, [1, height, width, profile.channels], name=INPUT_NAME)
    output = tf.identity(tf.clip_by_value(network.unet(packed, profile.block), 0.0, 1.0),
                         name=OUTPUT_NAME)
    return packed, output


def fixed_window(tile, overlap, packed_shape):
    """The one input shape (height, width) a device that compiles per shape is fed (the NPU:
    npu_config.uses_fixed_shapes): a tile with its context on every side, or without tiling the
    first image's size; both rounded up to whole pooling windows (ALIGN)."""
    if tile:
        return (tile + 2 * overlap,) * 2
    return tuple(int(math.ceil(n / float(ALIGN))) * ALIGN for n in packed_shape[:2])


def window_spans(length, window, overlap):
    """[(core_start, core_end, window_start)] covering [0, length) with windows of `window`.

    The cores and their contexts are tile_spans' for tiles of window - 2 * overlap (one tile when
    the image fits); each window starts on a multiple of ALIGN at or before its context and ends
    at or after it, inside the image where it fits. Windows past the end are zero-padded there.
    """
    if length <= window:
        return [(0, length, 0)]
    if window - 2 * overlap < ALIGN:
        raise cli.SidError('%d packed px do not fit %d-px windows with %d px of context on '
                           'each side: give a --tile' % (length, window, overlap))
    last = int(math.ceil((length - window) / float(ALIGN))) * ALIGN
    return [(y0, y1, min(cy0, last))
            for y0, y1, cy0, _ in tile_spans(length, window - 2 * overlap, overlap)]


def window_exact(packed_shape, window):
    """Whether fixed windows give the untiled result: no window needs zero padding (which the
    network's own border padding, applied to every feature map, is not). True for a Sony frame
    (1424 x 2128) with any window up to its size."""
    return all(n >= w and (n - w) % ALIGN == 0 for n, w in zip(packed_shape[:2], window))


def run_network(sess, packed_ph, output, packed, tile=0, overlap=DEFAULT_TILE_OVERLAP,
                dtypes=(np.uint8,), on_tile=None, block=camera.SONY.block, window=None):
    """[H, W, C] amplified packed raw -> one [block H, block W, 3] image per dtype, whole or tiled.

    block is the camera's (profile.block): a model whose output is another multiple of its input
    is refused. Each tile's output is converted in row blocks straight into the results, so
    nothing of full size is ever float. on_tile() is called after each tile (progress bars).
    window=(height, width) feeds every tile at that one shape (fixed_window, window_spans) for
    devices that compile per shape; tile is then implied by it.
    """
    height, width = packed.shape[:2]
    results = tuple(np.empty((block * height, block * width, 3), d) for d in dtypes)
    if window is None:
        rows = [(y0, y1, cy0, cy1 - cy0) for y0, y1, cy0, cy1 in tile_spans(height, tile, overlap)]
        cols = [(x0, x1, cx0, cx1 - cx0) for x0, x1, cx0, cx1 in tile_spans(width, tile, overlap)]
    else:
        rows = [span + (window[0],) for span in window_spans(height, window[0], overlap)]
        cols = [span + (window[1],) for span in window_spans(width, window[1], overlap)]
    for y0, y1, wy, wh in rows:
        for x0, x1, wx, ww in cols:
            inp = packed[None, wy:wy + wh, wx:wx + ww]
            if inp.shape[1:3] != (wh, ww):  # a fixed window past the image's end
                inp = np.pad(inp, ((0, 0), (0, wh - inp.shape[1]), (0, ww - inp.shape[2]),
                                   (0, 0)), 'constant')
            out = require_finite(sess.run(output, {packed_ph: inp})[0])
            if out.shape[:2] != (block * wh, block * ww):
                raise cli.SidError('the model turns %dx%d packed pixels into %dx%d, not %d '
                                   'times that' % (wh, ww, out.shape[0], out.shape[1], block))
            core = out[block * (y0 - wy):block * (y1 - wy), block * (x0 - wx):block * (x1 - wx)]
            for top in range(0, core.shape[0], BLOCK_ROWS):
                rows_out = core[top:top + BLOCK_ROWS]
                where = (slice(block * y0 + top, block * y0 + top + len(rows_out)),
                         slice(block * x0, block * x1))
                for result in results:
                    result[where] = to_uint(rows_out, result.dtype)
            del out, core, inp
            if on_tile is not None:
                on_tile()
    return results


def require_finite(out):
    """The network's output, refused in one line if any of it is NaN: to_uint would write those
    pixels as black and the run would end as if all went well."""
    bad = out.size - np.count_nonzero(np.isfinite(out))
    if bad:
        raise cli.SidError('the network output has %d non-finite values (NaN) of %d: the model '
                           'or its input is broken' % (bad, out.size))
    return out


def tile_count(height, width, tile, overlap=DEFAULT_TILE_OVERLAP, window=None):
    if window is not None:
        return (len(window_spans(height, window[0], overlap)) *
                len(window_spans(width, window[1], overlap)))
    return len(tile_spans(height, tile, overlap)) * len(tile_spans(width, tile, overlap))


# ---------------------------------------------------------------- models

def session_from_checkpoint(checkpoint_dir, config=None, profile=camera.SONY, height=None,
                            width=None):
    """The U-Net of a camera profile restored from a checkpoint folder or prefix, in a graph of
    its own.

    A checkpoint missing U-Net variables or with other shapes is refused in one line.
    """
    tf = cli.import_tensorflow()
    import checkpoints
    import network
    graph = tf.Graph()
    with graph.as_default():
        packed, output = build_network(profile, height, width)
        variables = network.model_variables()
        prefix = checkpoints.find(checkpoint_dir)
        if prefix is None:
            raise cli.SidError(checkpoints.NOT_FOUND % checkpoint_dir)
        checkpoints.check(prefix, variables)
        sess = tf.Session(graph=graph, config=config)
        checkpoints.restore(tf.train.Saver(var_list=variables), sess, prefix, 'the U-Net weights')
    return Model(sess, packed, output, prefix)


def session_from_graph(path, config=None):
    """A frozen inference graph written by scripts/export_model.py, in a graph of its own."""
    tf = cli.import_tensorflow()
    from google.protobuf.message import DecodeError
    graph_def = tf.GraphDef()
    try:
        with open(path, 'rb') as f:
            graph_def.ParseFromString(f.read())
    except (OSError, DecodeError) as e:
        raise cli.SidError('%s: not a readable frozen graph (%s)' % (path, type(e).__name__))
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name='')
    try:
        packed = graph.get_tensor_by_name(INPUT_NAME + ':0')
        output = graph.get_tensor_by_name(OUTPUT_NAME + ':0')
    except KeyError:
        raise cli.SidError('%s: the graph has no tensors named %s and %s; export it with '
                           'scripts/export_model.py' % (path, INPUT_NAME, OUTPUT_NAME))
    return Model(tf.Session(graph=graph, config=config), packed, output, path)


# ---------------------------------------------------------------- memory

def return_freed_memory_to_os():
    """glibc only: allocations of 4 MB and more by mmap, so freed tile buffers go back to the OS.

    glibc raises its mmap threshold after the first large frees; tile-sized buffers then come from
    the heap, whose fragments kept RSS growing by ~15 MB per image (measured: peak 1132 MB vs
    921 MB with this, --tile=512, same speed). Elsewhere this does nothing.
    """
    if not sys.platform.startswith('linux'):
        return
    import ctypes
    try:
        ctypes.CDLL('libc.so.6').mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        pass


def use_system_allocator():
    """Tensors from malloc instead of oneDNN's BFC pool, unless the user set the variable.

    Measured on a 2848 x 4256 pair, 2 x 2 tiles: live tensors peak near 540 MB (step stats), but
    the pool's RSS grew by 830 MB; with malloc the network's RSS growth is close to the live peak.
    Must run before the first session allocates anything.
    """
    os.environ.setdefault(ONEDNN_SYSTEM_ALLOCATOR_ENV, '1')


def peak_rss_mb():
    """This process's peak resident memory in MB (Linux/macOS), None elsewhere."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == 'darwin' else peak / 1024.0
