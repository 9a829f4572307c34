"""Run the trained SID U-Net on the Sony test pairs at full resolution (Chen et al., CVPR 2018),
or with --camera=Fuji (test_Fuji.py) on the Fuji X-Trans ones.

Each test pair's short exposure is packed, amplified by the exposure ratio and run through the
network. Three 8-bit PNGs per pair go to <result_dir>/final/, named as the official script names
them (scene, burst, integer ratio):

    %05d_00_%d_out.png    the network's output
    %05d_00_%d_gt.png     the long exposure, postprocessed like the training target
    %05d_00_%d_scale.png  the short exposure's own postprocessed image, rescaled to the ground
                          truth's mean (the paper's "scaling" baseline)

By default only the first burst frame (`_00`) of each scene is tested, as the official script does
(93 pairs on the real Sony set); --all_pairs tests every line of the list (598 pairs). Pairs whose
three PNGs are whole are skipped, unless their output was made by another checkpoint or with other
inference settings (each _out.png records both) or --overwrite is given.

Full-resolution inference (1424 x 2128 packed) peaks near 2.1 GB on a CPU, more than small GPUs
have. --tile runs the packed image in square tiles that overlap by --tile_overlap, so memory is
bounded by the tile size instead of the image size; with the default overlap the result is
the untiled one (see inference.py: DEFAULT_TILE_OVERLAP and tile_spans). The overlap is computed
twice, so time grows: on a 2848 x 4256 image on a CPU, --tile=1072 (2 x 2 tiles) takes 1.23x the
untiled time at 1.1 GB instead of 2.1 GB, --tile=512 1.71x at 0.86 GB
(scripts/bench/bench_inference.py).
About 420 MB of that is TensorFlow itself (its libraries and heap after import), whatever the tile
size.

The camera is a profile (camera.py). For Fuji the X-Trans raw is cropped to multiples of 6 and
packed into 9 channels at a third of the resolution, the output is 3x the packed size, and the
ground truth and baseline are cropped to it (as the authors' Fuji code). With --camera=bayer (your
own pairs of any Bayer camera, --test_list required) each raw is normalised with its own levels
and cut to start on its red pixel with even sides (at most one row and column less on each side),
the ground truth and baseline developed in the sensor's orientation and cut alike; the input is
then what scripts/enhance.py packs for that area.

    python3 test_Sony.py                               # defaults: ./dataset, ./checkpoint/Sony/
    python3 test_Sony.py --all_pairs --tile=512        # all pairs in bounded memory
"""
import os
import time

import numpy as np

import camera
import cli
import inference
import npu_config
import raw_io
import safe_files
import sid_lists

# Outputs named like the official test script: scene, burst index, integer ratio, kind.
RESULT_NAME = '%05d_%02d_%d_%s.png'
KINDS = ('out', 'gt', 'scale')
FIRST_BURST = 0  # the official script tests `%05d_00*` only
PNG_COMPRESS_LEVEL = 1  # lossless either way; level 1 writes a 36 MB RGB image several times faster
# Each output PNG records in two text chunks what made its pixels: the checkpoint (content id and
# path) and the inference settings (inference_stamp). Outputs of another model or of inexact tiling
# are never taken for done, and eval.py names the checkpoint and any inexact tiling it scores.
STAMP_KEY = 'sid_checkpoint'
INFERENCE_KEY = 'sid_inference'


def define_flags():
    from absl import flags
    camera.define_flag()
    flags.DEFINE_string('data_dir', './dataset', 'dataset root: list paths are relative to it')
    flags.DEFINE_string('test_list', './Sony_test_list.txt',
                        'test pairs, "short long ISO F" per line')
    flags.DEFINE_string('checkpoint_dir', './checkpoint/Sony/',
                        'folder with model.ckpt* (latest checkpoint is used) or a checkpoint '
                        'prefix')
    flags.DEFINE_string('result_dir', './result_Sony/', 'PNGs are written to <result_dir>/final/')
    flags.DEFINE_bool('all_pairs', False, 'test every pair of the list, not only burst frame _00')
    flags.DEFINE_bool('overwrite', False, 'recompute pairs whose PNGs already exist (outputs of '
                      'another checkpoint are always recomputed)')
    inference.define_tile_flags()
    npu_config.define_flags()
    flags.adopt_module_key_flags(camera)  # --help lists --camera


# ---------------------------------------------------------------- which pairs

def select_pairs(pairs, all_pairs, list_path):
    """[(pair, scene, burst, ratio)] to test: burst _00 only unless all_pairs, as the paper."""
    chosen, names = [], {}
    for pair in pairs:
        scene, burst, _ = sid_lists.parse_name(pair.short)
        if burst != FIRST_BURST and not all_pairs:
            continue
        ratio = sid_lists.exposure_ratio(pair.short, pair.long)
        key = (scene, burst, int(round(ratio)))
        if key in names:
            raise cli.SidError('%s:%d: gives the same result name as line %d (%s)'
                               % (list_path, pair.line, names[key], result_name(key, 'out')))
        names[key] = pair.line
        chosen.append((pair, scene, burst, ratio))
    return chosen


def result_name(key, kind):
    scene, burst, ratio = key
    return RESULT_NAME % (scene, burst, ratio, kind)


# ---------------------------------------------------------------- checkpoint

def checkpoint_to_test(path, variables):
    """The checkpoint --checkpoint_dir names (a folder's newest, or a prefix), checked against the
    U-Net's variables and read back.

    An unreadable newest checkpoint is an error, not a quiet fallback to the previous one (which
    training does): results must come from the checkpoint asked for. The error names the
    previous one to pass explicitly, if that one fits (a folder of another camera's model fits
    no better: its error says which camera it is for).
    """
    import checkpoints
    prefix = checkpoints.find(path)
    if prefix is None:
        raise cli.SidError(checkpoints.NOT_FOUND % path)
    try:
        checkpoints.check(prefix, variables)
    except cli.SidError as e:
        previous = [p for p in checkpoints.prefixes(path) if p != prefix][:1]
        try:
            for p in previous:
                checkpoints.check(p, variables)
        except cli.SidError:
            previous = []
        if not previous:
            raise e
        raise cli.SidError('%s; to test the previous checkpoint instead, pass '
                           '--checkpoint_dir=%s' % (e, previous[0]))
    return prefix


def checkpoint_stamp(prefix):
    """Content id of a checkpoint: the .index holds a CRC of every tensor, so its hash suffices."""
    path = prefix + '.index' if os.path.isfile(prefix + '.index') else prefix
    return '%s %s' % (safe_files.file_digest(path)[:len('sha256:') + 16], os.path.abspath(prefix))


def inference_stamp(rt, tile, overlap, packed_shape, window=None):
    """What besides the weights decides an output's pixels.

    Tiles with at least DEFAULT_TILE_OVERLAP of context give the untiled result (up to float
    summation order), so all such runs are 'tiling=exact'; less context changes pixels near tile
    edges (by up to 239 levels with none), so tile and overlap become part of the stamp. The
    NPU's fixed windows are exact unless one is zero-padded past the image (inference
    .window_exact). Device and precision decide rounding (mixed precision; TF32 convolutions on
    recent GPUs).
    """
    parts = ['device=%s' % rt.device, 'precision=%s' % rt.precision]
    if rt.npu_precision_mode:
        parts.append('npu_precision_mode=%s' % rt.npu_precision_mode)
    if window is not None:
        exact = overlap >= inference.DEFAULT_TILE_OVERLAP and inference.window_exact(
            packed_shape, window)
    else:
        exact = not tile or overlap >= inference.DEFAULT_TILE_OVERLAP or max(packed_shape) <= tile
    if exact:
        parts.append('tiling=exact')
    elif window is not None:
        parts.append('tiling=inexact window=%dx%d overlap=%d' % (window + (overlap,)))
    else:
        parts.append('tiling=inexact tile=%d overlap=%d' % (tile, overlap))
    return ' '.join(parts)


def finished_png(path):
    """(text chunks, (width, height)) of a whole PNG; None if it is missing, truncated or corrupt.

    The stamps sit in the header, which survives truncation. Pillow's verify() reads every chunk
    up to IEND and checks its CRC: it finds truncation (even of IEND alone, which decoding with
    load() accepts) and flipped bytes in 0.04 s on a full-size output, where load() takes 0.8 s.
    """
    from PIL import Image
    try:
        with Image.open(path) as im:
            info, size = dict(im.info), im.size  # our text chunks precede the pixels
            im.verify()
        return info, size
    except (OSError, ValueError, SyntaxError, EOFError):
        return None


def same_checkpoint(a, b):
    return a is not None and b is not None and a.split()[:1] == b.split()[:1]


def made_here(finished, stamp, rt, tile, overlap, block=camera.SONY.block, window=None):
    """Whether a finished _out.png has this run's checkpoint and inference stamps."""
    info, (width, height) = finished
    return (same_checkpoint(info.get(STAMP_KEY), stamp) and
            info.get(INFERENCE_KEY) == inference_stamp(rt, tile, overlap,
                                                       (height // block, width // block), window))


def npu_window(rt, tile, overlap, first_pair, profile):
    """The one input shape this run feeds the network, or None where shapes may vary (not on
    the NPU): a tile with its context, or untiled the first pair's packed size."""
    if not npu_config.uses_fixed_shapes(rt):
        return None
    shape = None if tile else camera.packed_raw(first_pair.short, profile).shape
    return inference.fixed_window(tile, overlap, shape)


# ---------------------------------------------------------------- inference

def mean_level(rgb16):
    """Mean of rgb16 / 65535 (float64 accumulation)."""
    return float(rgb16.mean(dtype=np.float64)) / raw_io.GT_SCALE


def save_ground_truth_and_scale(pair, paths, profile=camera.SONY):
    """The _gt.png (as raw_io.read_ground_truth: postprocess / 65535, cropped as the packing
    crops) and the _scale.png baseline."""
    gt16 = raw_io.develop(pair.long, profile.packing)
    gt_mean, gt_shape = mean_level(gt16), gt16.shape
    save_png(inference.postprocessed_to_uint8(gt16), paths['gt'])
    del gt16
    # The paper's "scaling" baseline: the short exposure's own image times mean(gt) / its mean.
    short16 = raw_io.develop(pair.short, profile.packing)
    if short16.shape != gt_shape:
        raise cli.SidError('%s: postprocessed size %dx%d differs from its ground truth %s '
                           '(%dx%d)' % (pair.short, short16.shape[1], short16.shape[0],
                                        pair.long, gt_shape[1], gt_shape[0]))
    short_mean = mean_level(short16)
    gain = gt_mean / short_mean if short_mean > 0 else 1.0
    save_png(inference.postprocessed_to_uint8(short16, gain), paths['scale'])


def save_png(image, path, texts=()):
    """An 8-bit RGB PNG with text chunks `texts` ({key: value}), written atomically."""
    from PIL import Image, PngImagePlugin
    info = PngImagePlugin.PngInfo()
    for key, value in sorted(dict(texts).items()):
        info.add_text(key, value)
    with safe_files.atomic_path(path) as tmp:
        Image.fromarray(image, 'RGB').save(tmp, format='PNG', compress_level=PNG_COMPRESS_LEVEL,
                                           pnginfo=info)


def main(argv):
    from absl import flags
    from tqdm import tqdm
    del argv
    f = flags.FLAGS
    profile = camera.from_flags()
    inference.use_system_allocator()
    inference.return_freed_memory_to_os()
    rt = npu_config.runtime_from_flags()
    print(npu_config.describe(rt))
    test_list = camera.required_list(f, 'test_list', profile)
    pairs = select_pairs(sid_lists.read_list(test_list, f.data_dir), f.all_pairs, test_list)
    if not pairs:
        raise cli.SidError('%s: no pairs to test%s' % (
            f.test_list, '' if f.all_pairs else ' with burst index _00 (see --all_pairs)'))

    config = npu_config.session_config(rt)  # TensorFlow from here; on the NPU: loads npu_bridge
    tf = cli.import_tensorflow()
    import checkpoints
    import network
    final_dir = os.path.join(f.result_dir, 'final')

    packed_ph, output = inference.build_network(profile)
    variables = network.model_variables()
    prefix = checkpoint_to_test(f.checkpoint_dir, variables)
    stamp = checkpoint_stamp(prefix)
    print('%s checkpoint %s (%d variables); %d pairs (%s), results in %s, %s'
          % (profile.name, prefix, len(variables), len(pairs),
             'all' if f.all_pairs else 'burst _00', final_dir,
             'tiles of %d+%d packed px' % (f.tile, f.tile_overlap) if f.tile else 'untiled'))

    window = npu_window(rt, f.tile, f.tile_overlap, pairs[0][0], profile)
    if window is not None:
        print('the NPU compiles one input shape: every tile is fed as %dx%d packed px' % window)
    safe_files.require_writable_dir(final_dir, 'test results')
    safe_files.lock_folder(final_dir, '--result_dir')
    removed = checkpoints.remove_leftovers(final_dir)
    if removed:
        print('removed %d temporary files of an interrupted run from %s' % (len(removed),
                                                                            final_dir))
    # What is left to do: PNGs missing or incomplete, outputs made by another checkpoint or with
    # other inference settings.
    todo, stale, broken = [], 0, 0
    for pair, scene, burst, ratio in pairs:
        key = (scene, burst, int(round(ratio)))
        paths = dict((k, os.path.join(final_dir, result_name(key, k))) for k in KINDS)
        finished = dict((k, None if f.overwrite else finished_png(p)) for k, p in paths.items())
        if not f.overwrite:
            broken += sum(1 for k in KINDS if finished[k] is None and os.path.exists(paths[k]))
        have = dict((k, v is not None) for k, v in finished.items())
        if have['out'] and not made_here(finished['out'], stamp, rt, f.tile, f.tile_overlap,
                                         profile.block, window):
            have['out'] = False
            stale += 1
        if not all(have.values()):
            todo.append((pair, ratio, paths, have))
    if broken:
        print('%d PNGs are incomplete or corrupt: recomputing them' % broken)
    if stale:
        print('%d outputs were made with another checkpoint or other inference settings: '
              'recomputing them' % stale)

    # Pass 1, raw decoding: ground truths and baselines. Done before the network has grown TF's
    # memory pool (which the CPU allocator keeps), so decoding does not stack on top of it.
    for pair, ratio, paths, have in tqdm([t for t in todo if not (t[3]['gt'] and t[3]['scale'])],
                                         desc='gt + scale', unit='pair'):
        save_ground_truth_and_scale(pair, paths, profile)
    # Pass 2, the network.
    network_seconds, network_cpu = [], []  # wall and CPU (all threads) time per pair
    with tf.Session(config=config) as sess:
        checkpoints.restore(tf.train.Saver(var_list=variables), sess, prefix, 'the U-Net weights')
        for pair, ratio, paths, have in tqdm([t for t in todo if not t[3]['out']],
                                             desc='network', unit='pair'):
            packed = camera.packed_raw(pair.short, profile)
            raw_io.amplify(packed, ratio, out=packed)
            start, start_cpu = time.time(), time.process_time()
            out, = inference.run_network(sess, packed_ph, output, packed, f.tile, f.tile_overlap,
                                         block=profile.block, window=window)
            network_seconds.append(time.time() - start)
            network_cpu.append(time.process_time() - start_cpu)
            texts = {STAMP_KEY: stamp,
                     INFERENCE_KEY: inference_stamp(rt, f.tile, f.tile_overlap, packed.shape[:2],
                                                    window)}
            del packed
            save_png(out, paths['out'], texts)  # last: a pair is done once its output exists
            del out  # else it lives through the next pair's network: 36 MB more on its peak
    rss = inference.peak_rss_mb()
    # The median leaves out the first pair's one-off graph optimisation and memory pool growth.
    print('tested %d pairs, skipped %d already done; network %.2f s per pair (median; %.1f CPU s); '
          'peak RSS %s' % (len(network_seconds), len(pairs) - len(todo),
                           float(np.median(network_seconds)) if network_seconds else 0.0,
                           float(np.median(network_cpu)) if network_cpu else 0.0,
                           '%.0f MB' % rss if rss is not None else 'n/a'))


if __name__ == '__main__':
    cli.run(main, define_flags, hint='it reads its pairs from --test_list; for your own raw files '
                                     'use scripts/enhance.py')
