"""Train the SID U-Net on the Sony set (Chen et al., "Learning to See in the Dark", CVPR 2018),
or with --camera=Fuji (train_Fuji.py) on the Fuji X-Trans set.

The paper's recipe (Section 3.2 and the authors' train_Sony.py): every step takes one training
scene, one of its short exposures at random, the ratio-amplified packed raw clipped at 1, a random
512 x 512 crop (1024 x 1024 of the ground truth at the same place), random vertical flip,
horizontal flip and transpose, L1 loss, Adam at 1e-4 dropping to 1e-5 after epoch 2000.

What differs from the official script is how, not what:
- raws are decoded once into an on-disk uint16 cache (raw_cache.py) and crops are
  cut from memory maps, so memory stays flat in the dataset size instead of 64+ GB of float32;
- a tf.data pipeline (GetNext-fed graph, as Ascend's iterations_per_loop needs) cuts, amplifies
  and flips crops in parallel threads ahead of the step;
- epoch and global step live in the checkpoint, so a restart resumes at the next epoch with the
  right learning rate; SIGINT/SIGTERM save first; a non-finite float32 loss stops the run.
The camera is a profile (camera.py): its packing, levels and depth_to_space block (Sony 2x2 Bayer
-> 4 channels, block 2; Fuji 6x6 X-Trans -> 9 channels, block 3, ground-truth crops at 3x the
packed offset) and the defaults of the list, checkpoint and result flags. --camera=bayer fine-tunes
on pairs of any Bayer camera: each raw normalised with its own per-channel levels (as
scripts/enhance.py packs it), its mosaic and ground truth cut alike to start on the red pixel.

    python3 scripts/make_dataset.py                      # or the real Sony set in ./dataset
    python3 train_Sony.py --epochs=1001                  # the seed's recipe
    python3 train_Sony.py --camera=bayer --data_dir=mine --train_list=mine/Sony_train_list.txt \
        --finetune_from=checkpoint/Sony/ --checkpoint_dir=checkpoint/mine/    # your camera
    horovodrun -np 2 --gloo python3 train_Sony.py --distributed=horovod
"""
import json
import math
import os
import re
import signal
import sys
import time
from collections import OrderedDict, namedtuple

import numpy as np
from absl import flags

import camera
import cli
import inference
import npu_config
import raw_cache
import raw_io
import safe_files
import sid_lists

# ---------------------------------------------------------------- the paper's recipe
PATCH = 512              # packed-input crop; the ground truth crop is the camera's block x that
EPOCHS = 4000            # the paper; the seed's recipe stops at --epochs=1001
LEARNING_RATE = 1e-4
LR_DROP_EPOCH = 2000     # epochs after this one use LEARNING_RATE * LR_DROP_FACTOR
LR_DROP_FACTOR = 0.1
BATCH = 1
SAVE_FREQ = 500          # sample JPGs every this many epochs
# Checkpoint after every epoch by default: a kill costs at most one epoch. At 8 Ascend devices an
# epoch is about a second and the 93 MB save is not free; --checkpoint_every trades the two.
CHECKPOINT_EVERY = 1

# ---------------------------------------------------------------- files and logs
EPOCH_VAR, LR_VAR = 'epoch', 'learning_rate'  # checkpointed training state besides global_step
MAX_SEED = 2 ** 32 - 1        # numpy seeds (epoch_rng) are 32-bit
SAMPLE_DIR = '%04d'
SAMPLE_NAME = '%05d_00_train_%d.jpg'  # scene id, ratio (the official names)
JPEG_QUALITY = 95
# tf.data map threads cutting crops (numpy releases the GIL): by default one per core this rank
# has (npu_config.Distribution.cores); a fast device on a host with cores to spare needs them.
CROP_THREADS_AUTO = 0
PREFETCH_BATCHES = 4     # batches ready ahead of the step

# ---------------------------------------------------------------- validation
VAL_LIST = './Sony_val_list.txt'  # the authors' list: on by default when its _00 files exist
# epochs between validations: 5 points over the seed's 1001 epochs, 20 over the paper's 4000;
# one full-resolution pass of the 36 Sony pairs costs ~1.6 CPU epochs
VAL_EVERY = 200
VAL_SSIM = 'skimage'     # eval.py's default SSIM protocol (metrics.SSIM_PROTOCOLS)
VAL_TILE = 1072          # packed px: 2 x 2 tiles on a Sony frame, bounded memory, exact result
VAL_PROTOCOL = ('mean PSNR and SSIM (%s) over the burst _00 pairs, 8-bit RGB, full resolution: '
                'test_Sony.py + eval.py' % VAL_SSIM)
BEST_DIR = 'best'        # <checkpoint_dir>/best/: the U-Net weights with the best validation PSNR
BEST_FILE = 'best.json'  # ... and their epoch, step, scores, protocol and validation pairs
PSNR_RANGE = (0.0, 100.0)  # dB a best.json may hold: 100 dB is a mean error of 1/400 of a level

# One line per step (the ModelZoo performance script averages Time=) and one per epoch; parse
# both with the regexes below, never with ad-hoc greps.
_FLOAT = r'([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))'
PROGRESS_MODES = ('auto', 'lines', 'bar')
STEP_LOG = '%d %d Loss=%.6f Time=%.4f'  # epoch, step in epoch, running mean L1, step seconds
STEP_LOG_RE = re.compile(r'^(\d+) (\d+) Loss=%s Time=%s$' % (_FLOAT, _FLOAT))
EPOCH_LOG = ('Epoch %d done: steps=%d mean_loss=%.6f epoch_time=%.2f input_wait=%.3f lr=%g '
             'checkpoint=%s')
EPOCH_LOG_RE = re.compile(r'^Epoch (\d+) done: steps=(\d+) mean_loss=%s epoch_time=%s '
                          r'input_wait=%s lr=%s checkpoint=(\S+)$' % ((_FLOAT,) * 4))
FIRST_STEP_LOG = 'First step at unix time %.3f, %.2f s after start'
FIRST_STEP_LOG_RE = re.compile(r'^First step at unix time %s, %s s after start$' % (_FLOAT, _FLOAT))
VAL_LOG = ('Validation epoch %d: pairs=%d psnr=%.4f ssim=%.4f best_psnr=%.4f best_epoch=%d '
           'seconds=%.1f')
VAL_LOG_RE = re.compile(r'^Validation epoch (\d+): pairs=(\d+) psnr=%s ssim=%s best_psnr=%s '
                        r'best_epoch=(\d+) seconds=%s$' % ((_FLOAT,) * 4))

Crop = namedtuple('Crop', 'pair y x flip_v flip_h transpose')


class TrainingStopped(cli.SidError):
    """Training cannot go on (non-finite loss): one line naming the step, exit 1."""


# ---------------------------------------------------------------- data: scenes and sampling

def training_pairs(pairs, first_burst_only=False):
    """The pairs a step may draw from. The official script globs `<scene>_00*` and so only ever
    trains on burst frame 00 (of each exposure time); by default every short exposure in the list
    is used, as the paper's text reads."""
    if not first_burst_only:
        return pairs
    return [p for p in pairs if sid_lists.parse_name(p.short)[1] == 0]


def group_scenes(pairs):
    """Scene id -> indices of its pairs, in scene order: one epoch visits every scene once."""
    scenes = OrderedDict()
    for i, pair in enumerate(pairs):
        scenes.setdefault(sid_lists.parse_name(pair.short)[0], []).append(i)
    return OrderedDict(sorted(scenes.items()))


def steps_per_epoch(n_scenes, world_size, batch_size):
    """Every rank runs the same number of steps (collectives would hang otherwise): the largest
    shard, in batches. Shorter shards top up with random scenes of their own."""
    return int(math.ceil(int(math.ceil(n_scenes / float(world_size))) / float(batch_size)))


def learning_rate(epoch, base=LEARNING_RATE, drop_epoch=LR_DROP_EPOCH):
    """The paper's schedule: `base` up to and including `drop_epoch`, a tenth of it afterwards."""
    return base if epoch <= drop_epoch else base * LR_DROP_FACTOR


def epoch_crops(scenes, shapes, ps, samples, rng):
    """The crops of one epoch on one rank: the official sampling rule.

    A random permutation of this rank's scenes (topped up to `samples`), per scene one of its short
    exposures at random, a uniform crop position (inclusive of the last one, unlike the official
    randint's off-by-one) and three coin flips: vertical flip, horizontal flip, transpose.
    """
    ids = list(scenes)
    order = list(rng.permutation(len(ids)))
    order += list(rng.randint(0, len(ids), samples - len(order)))
    crops = []
    for k in order:
        members = scenes[ids[k]]
        pair = members[rng.randint(len(members))]
        height, width = shapes[pair]
        y, x = rng.randint(0, height - ps + 1), rng.randint(0, width - ps + 1)
        flip_v, flip_h, transpose = (int(rng.randint(2)) for _ in range(3))
        crops.append(Crop(pair, int(y), int(x), flip_v, flip_h, transpose))
    return crops


def epoch_rng(seed, epoch, rank):
    """The epoch's sampling depends only on (seed, epoch, rank): a resumed run sees the same
    data as an uninterrupted one."""
    return np.random.RandomState([seed, epoch, rank])


def pixels(image):
    """An [H, W, C] C-contiguous array as [H, W] opaque pixels (C channels per item), so that
    flips and transposes move whole pixels: numpy's strided copies are several times faster."""
    return image.view('V%d' % (image.shape[2] * image.itemsize))[..., 0]


def augment(px, crop):
    """The official augmentation, in its order: flip rows, flip columns, swap the two axes."""
    if crop.flip_v:
        px = px[::-1]
    if crop.flip_h:
        px = px[:, ::-1]
    if crop.transpose:
        px = px.T
    return px


def cut_patch(packed, rgb, ratio, crop, ps, profile=camera.SONY, levels=None):
    """One training pair: (float32 input [ps,ps,channels], target [b ps,b ps,3]) at `crop`, b the
    camera's block (the ground truth's crop starts at b times the packed offset), the input
    normalised with `levels` (black, white), by default the profile's constants.

    The crop is cut and flipped in one copy of uint16 pixels straight from the memory map, then
    only the crop is amplified, clipped and converted to float.
    """
    def cut(image, scale):
        y, x, size = scale * crop.y, scale * crop.x, scale * ps
        flipped = np.ascontiguousarray(augment(pixels(image)[y:y + size, x:x + size], crop))
        return flipped.view(image.dtype).reshape(flipped.shape + image.shape[2:])

    inp = raw_io.normalize(cut(packed, 1), *(levels or camera.levels(profile)))
    return raw_io.amplify(inp, ratio, out=inp), raw_io.gt_to_float(cut(rgb, profile.block))


class CachedPairs(object):
    """The training pairs as cache entries; crops are read from fresh memory maps, so nothing of
    the dataset stays resident in this process (the page cache keeps hot files fast anyway)."""

    def __init__(self, pairs, entries, profile=camera.SONY):
        self.pairs, self.profile = pairs, profile
        packing = camera.PACKINGS[profile.packing]
        input_kind, gt_kind = packing.cache_kinds
        self.inputs = [entries.get((p.short, input_kind)) for p in pairs]  # None: another rank's
        self.targets = [entries.get((p.long, gt_kind)) for p in pairs]  # novm
        # The file's levels of each input (None where the profile's constants apply)
        self.level_entries = [entries.get((p.short, packing.levels_kind)) for p in pairs]
        self.ratios = [sid_lists.exposure_ratio(p.short, p.long) for p in pairs]  # novm
        self.scene_ids = [sid_lists.parse_name(p.short)[0] for p in pairs]

    def check_shapes(self, indices, ps):
        """{pair: (h, w)}: packed [h, w, channels] inputs with [b h, b w, 3] targets (b the
        camera's block), >= ps on a side."""
        channels, block = self.profile.channels, self.profile.block
        shapes = {}
        for i in indices:
            packed = raw_cache.open_cached(self.inputs[i])
            rgb = raw_cache.open_cached(self.targets[i])
            h, w, c = packed.shape
            where = '%s (list line %d)' % (self.pairs[i].short, self.pairs[i].line)
            target = self.pairs[i].long  # novm (the list's long-exposure field, not Python 2)
            if c != channels or rgb.shape != (block * h, block * w, 3):
                raise cli.SidError('%s: packed input %s does not match ground truth %s of %s'
                                   % (where, packed.shape, rgb.shape, target))
            if min(h, w) < ps:
                raise cli.SidError('%s: packed size %dx%d is smaller than --ps=%d'
                                   % (where, h, w, ps))
            shapes[i] = (h, w)
        return shapes

    def patch(self, crop, ps):
        packed = raw_cache.open_cached(self.inputs[crop.pair])
        rgb = raw_cache.open_cached(self.targets[crop.pair])
        return cut_patch(packed, rgb, self.ratios[crop.pair], crop, ps, self.profile,
                         self.levels(crop.pair))

    def levels(self, i):
        """(black, white) per packed channel of pair i's input: the profile's, or its file's."""
        entry = self.level_entries[i]
        return camera.levels(self.profile, entry and raw_cache.read_levels_entry(entry))


def input_pipeline(data, crops, ps, batch_size, threads=1):
    """tf.data: crop plans (from the callable `crops`) -> numpy crops in `threads` parallel
    threads -> batches.

    Yields (input [N,ps,ps,channels], target [N,b ps,b ps,3], scene id [N], ratio [N], ready time
    [N]), b the camera's block;
    the ready time (when the crop was finished) tells how long a step waited for its data.
    """
    import tensorflow.compat.v1 as tf

    def plans():
        for crop in crops():
            yield tuple(crop)

    def load(*plan):
        crop = Crop(*(int(v) for v in plan))
        raw, gt = data.patch(crop, ps)
        return (raw, gt, np.int32(data.scene_ids[crop.pair]), np.float32(data.ratios[crop.pair]),
                np.float64(time.time()))

    @tf.autograph.experimental.do_not_convert  # plain graph code: skip seconds of autograph
    def load_op(*plan):
        raw, gt, scene, ratio, ready = tf.numpy_function(
            load, list(plan), [tf.float32, tf.float32, tf.int32, tf.float32, tf.float64])
        raw.set_shape([ps, ps, data.profile.channels])
        gt.set_shape([data.profile.block * ps, data.profile.block * ps, 3])
        for t in (scene, ratio, ready):
            t.set_shape([])
        return raw, gt, scene, ratio, ready

    ds = tf.data.Dataset.from_generator(plans, (tf.int32,) * len(Crop._fields),
                                        (tf.TensorShape([]),) * len(Crop._fields))
    ds = ds.map(load_op, num_parallel_calls=threads)
    if batch_size == 1:  # a reshape instead of batch()'s copy of every patch
        ds = ds.map(tf.autograph.experimental.do_not_convert(
            lambda *t: tuple(tf.expand_dims(x, 0) for x in t)))
    else:
        ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.prefetch(PREFETCH_BATCHES)
    return tf.data.make_one_shot_iterator(ds).get_next()


# ---------------------------------------------------------------- checkpoints and outputs

def resume_point(checkpoint_dir, say):
    """(checkpoint to resume from or None, last completed epoch) - from the checkpoint, not folders.

    The newest checkpoint that reads back completely: an unreadable newer one (truncated by a
    full disk, say) is skipped with one line, the previous one is kept for exactly this.
    """
    import tensorflow.compat.v1 as tf
    import checkpoints
    path, skipped = checkpoints.newest_intact(checkpoint_dir)
    if skipped and path is None:
        raise cli.SidError('%s: no readable checkpoint (%s); move the folder away to start '
                           'afresh' % (checkpoint_dir, '; '.join(str(e) for e in skipped)))
    if skipped:
        say('warning: %s; resuming from the previous checkpoint %s'
            % ('; '.join(str(e) for e in skipped), path))
    if path is None:
        return None, 0
    try:
        return path, int(tf.train.load_variable(path, EPOCH_VAR))
    except (tf.errors.OpError, ValueError) as e:
        raise cli.SidError('%s: not a train_Sony.py checkpoint (%s); to start from model-only '
                           'weights, pass them with --finetune_from and train into another '
                           '--checkpoint_dir' % (path, checkpoints.error_line(e)))


# ---------------------------------------------------------------- validation

def validation_pairs(val_list, explicit, data_dir, say):
    """The burst _00 pairs of `val_list` (test_Sony.py's choice), or None: validation off.

    The default list turns validation off in one line when any of those files is missing (a
    training set without the validation download); a list named on the command line must be
    complete. An empty --val_list turns it off silently.
    """
    if not val_list:
        return None
    if not explicit and not os.path.isfile(val_list):
        say('validation off: %s not found (--val_list names another list)' % val_list)
        return None
    pairs = training_pairs(sid_lists.read_list(val_list, data_dir, check_files=False), True)
    missing = OrderedDict()  # file -> its first list line
    for p in pairs:
        for path in (p.short, p.long):  # novm
            if path not in missing and not os.path.isfile(path):
                missing[path] = p.line
    if explicit and not pairs:
        raise cli.SidError('%s: no pairs with burst index _00 to validate on' % val_list)
    if explicit and missing:
        path, line = next(iter(missing.items()))
        raise cli.SidError('%s:%d: file not found: %s' % (val_list, line, path))
    if missing or not pairs:
        say('validation off: %s%s (--val_list names another list, --val_list= turns this off)'
            % (val_list, ': no pairs with burst index _00' if not pairs else
               ': %d files of its %d burst _00 pairs are missing under %s' % (
                   len(missing), len(pairs), data_dir)))
        return None
    return pairs


def validate(sess, packed_ph, output, data, stop, indices=None, window=None):
    """{pair index: (PSNR, SSIM)} of the network over the pairs `indices` of `data` (CachedPairs;
    default all), or None when a signal arrives.

    The numbers test_Sony.py + eval.py give for these pairs: the same tiled full-resolution
    inference (exact, see inference.tile_spans; on the NPU fixed windows, inference.window_spans)
    and 8-bit conversion of output and ground truth, scored by the same metrics. Inputs and
    ground truths come from the decoded-raw cache.
    """
    import metrics
    scores = {}
    for i in range(len(data.pairs)) if indices is None else indices:
        packed = raw_io.normalize(raw_cache.open_cached(data.inputs[i]), *data.levels(i))
        raw_io.amplify(packed, data.ratios[i], out=packed)
        out, = inference.run_network(sess, packed_ph, output, packed, VAL_TILE,
                                     block=data.profile.block, window=window)
        del packed
        gt = inference.postprocessed_to_uint8(raw_cache.open_cached(data.targets[i]))
        scores[i] = (metrics.psnr(out, gt), metrics.ssim(out, gt, VAL_SSIM))
        if stop.signum is not None:
            return None
    return scores


def read_best(best_dir, identity, say):
    """The record of best_dir's checkpoint (BEST_FILE), or None when there is no usable one.

    A record of other validation pairs or another protocol is refused: its score cannot be
    compared; so is an implausible score (NaN, outside PSNR_RANGE), which no validation would beat
    or which beats every one. A record that does not name the folder's checkpoint (left by a kill
    between the two writes of a version before best/ was replaced as a unit) is dropped with one
    line; main validates before it ends, which writes both again.
    """
    import checkpoints
    path = os.path.join(best_dir, BEST_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        stored = dict((k, record[k]) for k in identity)
        record['psnr'], record['epoch'] = float(record['psnr']), int(record['epoch'])
        record['last_validated'] = int(record.get('last_validated', record['epoch']))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise cli.SidError('%s: unreadable best-checkpoint record (%s: %s); move %s away to '
                           'start a new best' % (path, type(e).__name__, e, best_dir))
    if not PSNR_RANGE[0] <= record['psnr'] <= PSNR_RANGE[1]:  # NaN too
        raise cli.SidError('%s: implausible best PSNR %r dB (a validation gives %g-%g); move %s '
                           'away to start a new best' % (path, record['psnr'], PSNR_RANGE[0],
                                                         PSNR_RANGE[1], best_dir))
    if stored != identity:
        raise cli.SidError('%s: the best checkpoint was scored on other validation pairs or '
                           'with another protocol; pass the same --val_list, or move %s away '
                           'to start a new best' % (path, best_dir))
    prefix = checkpoints.find(best_dir)
    if prefix is None or os.path.basename(prefix) != record.get('checkpoint'):
        say('warning: %s names %s but %s holds %s (an interrupted update); the next validation '
            'replaces both' % (path, record.get('checkpoint'), best_dir, prefix and
                               os.path.basename(prefix)))
        return None
    return record


def validation_identity(pairs):
    """What makes two validation scores comparable: the protocol and the pairs."""
    return {'protocol': VAL_PROTOCOL, 'pairs': [os.path.basename(p.short) for p in pairs]}


def validation_due(best_dir, pairs, epoch, val_every):
    """Whether the resumed `epoch` must be validated before anything else: a validation epoch
    whose validation never finished (a kill during it), or a best/ its record does not describe.
    Read from best.json on every rank (the same answer everywhere); an unusable record raises."""
    if not pairs or epoch <= 0:
        return False
    best = read_best(best_dir, validation_identity(pairs), lambda *args: None)
    if best is None:
        return epoch % val_every == 0 or os.path.isdir(best_dir)
    return epoch % val_every == 0 and best['last_validated'] < epoch


def write_record(path, record):
    with safe_files.atomic_write(path, 'w') as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write('\n')


def keep_best(saver, sess, best_dir, step, record):
    """The U-Net weights and their record as best_dir, one unit: both are written into a hidden
    sibling folder that then replaces best_dir in one step (safe_files.replace_folder), so a kill
    leaves the old pair or the new one, never a checkpoint with another's record.
    test_Sony.py --checkpoint_dir=<best_dir> runs them."""
    import checkpoints
    import shutil
    parent = os.path.dirname(os.path.abspath(best_dir))
    build = None
    try:
        os.makedirs(parent, exist_ok=True)
        build = safe_files.new_temp_folder(parent, os.path.basename(os.path.abspath(best_dir)))
        prefix = checkpoints.save(saver, sess, build, step, keep=1)
        record = dict(record, checkpoint=os.path.basename(prefix), last_validated=record['epoch'])
        write_record(os.path.join(build, BEST_FILE), record)
        safe_files.fsync_tree(build)
        build = safe_files.replace_folder(build, best_dir)  # now the old best/, or None
    except (OSError, cli.SidError) as e:
        cause = e.__context__ if isinstance(e, cli.SidError) and e.__context__ else e
        raise cli.SidError('%s: cannot write the best checkpoint (%s); the previous best is '
                           'unchanged' % (best_dir, 'no space left on %s' % parent
                                          if checkpoints.no_space(cause) else
                                          checkpoints.error_line(cause)))
    finally:
        if build is not None:
            shutil.rmtree(build, ignore_errors=True)
    return record


def note_validated(best_dir, best, epoch):
    """best's record, rewritten (atomically) to say that `epoch` was validated: a resumed run then
    knows not to validate it again. The checkpoint it names stays."""
    best = dict(best, last_validated=epoch)
    write_record(os.path.join(best_dir, BEST_FILE), best)
    return best


class Validator(object):
    """Validation on every rank: each scores its share of the pairs, one all-reduce gathers the
    scores (so no rank waits minutes inside a collective for another's validation), rank 0 logs
    them and keeps the best checkpoint.

    The validation network is a second input on the training graph sharing the U-Net's weights
    (network.unet reuses variables), so it sees exactly the weights just trained. The scores
    travel as a float32 table (HCCL's all-reduce takes no float64), each pair in its own row and
    zeros elsewhere, so the sum is exact and the same on every rank; each float64 score is a
    float32 pair (split_float64) that keeps about 48 of its bits. The last row counts the ranks
    a signal stopped.
    """

    def __init__(self, data, val_list, best_dir, saver, fresh_start, say, dist, window=None):
        import tensorflow.compat.v1 as tf
        import checkpoints
        self.data, self.best_dir, self.saver, self.say = data, best_dir, saver, say
        self.dist, self.window, self.val_list = dist, window, val_list
        self.mine = dist.shard(list(range(len(data.pairs))))
        self.identity = validation_identity(data.pairs)
        self.best = None
        if dist.is_chief:
            removed = checkpoints.remove_leftovers(best_dir)
            if removed:
                say('removed %d leftovers of an interrupted save from %s (%s)'
                    % (len(removed), best_dir, ', '.join(removed)))
            self.best = read_best(best_dir, self.identity, say)
            if self.best is not None and fresh_start:
                raise cli.SidError('%s holds the best checkpoint of an earlier run (epoch %d) '
                                   'but there is no checkpoint to resume: move it away to start '
                                   'afresh' % (best_dir, self.best['epoch']))
        self.packed, self.output = inference.build_network(data.profile)
        self.table = tf.placeholder(tf.float32, [len(data.pairs) + 1, 4])
        self.total = dist.sum_op(self.table)

    def __call__(self, sess, epoch, step, writer, stop):
        """Validate after `epoch`; False if a signal interrupted it on any rank."""
        start = time.time()
        scores = validate(sess, self.packed, self.output, self.data, stop, self.mine, self.window)
        n = len(self.data.pairs)
        table = np.zeros((n + 1, 4), np.float32)
        if scores is None:
            table[n, 0] = 1
        for i, score in (scores or {}).items():
            table[i] = split_float64(score)
        total = sess.run(self.total, {self.table: table}).astype(np.float64)
        if total[n, 0] > 0:
            return False
        psnr, ssim = (float(v) for v in np.mean(total[:n, 0::2] + total[:n, 1::2], axis=0))
        if not self.dist.is_chief:
            return True
        if self.best is None or psnr > self.best['psnr']:
            self.best = keep_best(self.saver, sess, self.best_dir, step, dict(
                self.identity, epoch=epoch, global_step=int(step), psnr=psnr, ssim=ssim,
                ssim_protocol=VAL_SSIM, val_list=self.val_list))
        else:
            self.best = note_validated(self.best_dir, self.best, epoch)
        scalar_summary(writer, 'val_psnr', psnr, step)
        scalar_summary(writer, 'val_ssim', ssim, step)
        writer.flush()
        self.say(VAL_LOG % (epoch, n, psnr, ssim, self.best['psnr'], self.best['epoch'],
                            time.time() - start))
        return True


def split_float64(values):
    """float64 values as float32 pairs (high, low), interleaved: high + low (summed in float64)
    gives each value to about 48 bits, where float32 alone keeps 24."""
    values = np.asarray(values, np.float64)
    high = values.astype(np.float32)
    low = (values - high).astype(np.float32)
    return np.stack([high, low], axis=-1).reshape(-1)


def save_sample(result_dir, epoch, scene_id, ratio, target, output):
    """Ground truth | output side by side, 8-bit JPG, written atomically."""
    from PIL import Image
    image = np.concatenate([target, np.clip(output, 0.0, 1.0)], axis=1)
    path = os.path.join(result_dir, SAMPLE_DIR % epoch, SAMPLE_NAME % (scene_id, int(round(ratio))))
    with safe_files.atomic_path(path) as tmp:
        Image.fromarray((image * 255.0 + 0.5).astype(np.uint8)).save(tmp, 'JPEG',
                                                                     quality=JPEG_QUALITY)


def short_list(names, shown=3):
    """'a, b, c and 4 more': names for a one-line message."""
    more = len(names) - shown
    return ', '.join(names[:shown]) + (' and %d more' % more if more > 0 else '')


def scalar_summary(writer, tag, value, step):
    """Host-side TensorBoard scalar: no summary ops in the device graph."""
    import tensorflow.compat.v1 as tf
    writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))]),
                       step)


class StopRequest(object):
    """SIGINT/SIGTERM only set a flag; the loop finishes the step, saves, then exits."""

    def __init__(self):
        cli.raise_if_interrupted()  # a start-up Ctrl-C that library code swallowed
        self.signum = None
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        del frame
        self.signum = signum


# ---------------------------------------------------------------- training

def main(argv):
    import tensorflow.compat.v1 as tf
    from tqdm import tqdm
    import checkpoints
    import network
    del argv
    start = time.time()
    tf.disable_v2_behavior()
    f = flags.FLAGS
    profile = camera.from_flags()
    rt = npu_config.runtime_from_flags()
    dist = npu_config.Distribution(f.distributed)
    say = print if dist.is_chief else (lambda *a, **k: None)
    show_bar = f.progress == 'bar' or (f.progress == 'auto' and sys.stderr.isatty())
    say(npu_config.describe(rt) + ', rank %d of %d' % (dist.rank, dist.size))
    if dist.is_chief and os.path.isdir(f.checkpoint_dir):  # before the cache needs disk space
        safe_files.lock_folder(f.checkpoint_dir, '--checkpoint_dir')
        removed = checkpoints.remove_leftovers(f.checkpoint_dir)
        if removed:
            say('removed %d leftovers of an interrupted save from %s (%s)'
                % (len(removed), f.checkpoint_dir, ', '.join(removed)))

    # Data: every training file checked, decoded into the cache, and shape-checked before step 1.
    train_list = camera.required_list(f, 'train_list', profile)
    pairs = training_pairs(sid_lists.read_list(train_list, f.data_dir), f.first_burst_only)
    if not pairs:
        raise cli.SidError('%s: the training list has no pairs%s' % (
            f.train_list, ' of burst frame _00' if f.first_burst_only else ''))
    val_pairs = validation_pairs(f.val_list, f['val_list'].present, f.data_dir, say)
    scenes = group_scenes(pairs)
    mine = OrderedDict((s, scenes[s]) for s in dist.shard(list(scenes)))
    if not mine:
        raise cli.SidError('%s: %d scenes cannot feed %d ranks' % (f.train_list, len(scenes),
                                                                   dist.size))
    my_pairs = [i for members in mine.values() for i in members]
    cache_dir = f.cache_dir or os.path.join(f.data_dir, 'cache')
    raws = camera.cache_jobs([pairs[i] for i in my_pairs], profile)
    if val_pairs:  # every rank validates its share
        raws += camera.cache_jobs(dist.shard(val_pairs), profile)
    workers = f.cache_workers or dist.cores()
    safe_files.require_writable_dir(cache_dir, 'the decoded-raw cache')
    entries = raw_cache.build_cache(raws, cache_dir, f.data_dir, workers, progress=dist.is_chief)
    data = CachedPairs(pairs, entries, profile)
    shapes = data.check_shapes(my_pairs, f.ps)
    steps = steps_per_epoch(len(scenes), dist.size, f.batch_size)
    crop_threads = f.crop_threads or dist.cores()
    say('%s: %d pairs in %d scenes (%d on this rank), %d steps of batch %d per epoch, cache %s, '
        '%d crop threads' % (profile.name, len(pairs), len(scenes), len(mine), steps,
                             f.batch_size, cache_dir, crop_threads))
    val_data = CachedPairs(val_pairs, entries, profile) if val_pairs else None
    if val_data is not None:  # any size: full-resolution inference
        val_data.check_shapes(dist.shard(list(range(len(val_pairs)))), 1)
        say('validation every %d epochs on %d burst _00 pairs of %s, best checkpoint in %s'
            % (f.val_every, len(val_pairs), f.val_list, os.path.join(f.checkpoint_dir, BEST_DIR)))

    if dist.is_chief:  # the data is sound: now the outputs, before hours of training
        safe_files.require_writable_dir(f.checkpoint_dir, 'checkpoints')
        safe_files.lock_folder(f.checkpoint_dir, '--checkpoint_dir')
        safe_files.require_writable_dir(f.result_dir, 'samples and TensorBoard logs')
    ckpt_path, done_epochs = resume_point(f.checkpoint_dir, say)
    first_epoch = done_epochs + 1
    # A kill during the last validation, or a best/ its record does not describe: validate first.
    validate_first = validation_due(os.path.join(f.checkpoint_dir, BEST_DIR), val_pairs,
                                    done_epochs, f.val_every)
    if first_epoch > f.epochs and not validate_first:
        say('%s already holds epoch %d of %d: nothing to do' % (ckpt_path, done_epochs, f.epochs))
        return

    def all_crops():
        for epoch in range(first_epoch, f.epochs + 1):
            for crop in epoch_crops(mine, shapes, f.ps, steps * f.batch_size,
                                    epoch_rng(f.seed, epoch, dist.rank)):
                yield crop

    # The graph: pipeline -> U-Net -> L1 -> Adam (wrapped for the device and the world).
    tf.set_random_seed(f.seed)
    inputs, targets, scene_ids, ratios, ready = input_pipeline(data, all_crops, f.ps,
                                                               f.batch_size, crop_threads)
    outputs = network.unet(inputs, profile.block)
    # Before the optimizer exists: model_variables() matches names, and Adam's slots of the U-Net
    # weights (g_conv1_1/weights/Adam) would match too.
    weights_saver = tf.train.Saver(network.model_variables())
    loss = tf.reduce_mean(tf.abs(outputs - targets))
    global_step = tf.train.get_or_create_global_step()
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name=EPOCH_VAR)
    lr_var = tf.Variable(f.learning_rate, dtype=tf.float32, trainable=False, name=LR_VAR)
    epoch_in = tf.placeholder(tf.int64, [])
    lr_in = tf.placeholder(tf.float32, [])
    set_epoch, set_lr = tf.assign(epoch_var, epoch_in), tf.assign(lr_var, lr_in)
    optimizer = npu_config.wrap_optimizer(tf.train.AdamOptimizer(lr_var), rt, dist)
    train_op = optimizer.minimize(loss, global_step=global_step)
    broadcast = dist.broadcast_op()
    saver = tf.train.Saver()  # checkpoints.save keeps the newest checkpoints.KEEP, across runs
    val_window = inference.fixed_window(VAL_TILE, inference.DEFAULT_TILE_OVERLAP, None) \
        if npu_config.uses_fixed_shapes(rt) else None  # one shape for the NPU's compiler
    validator = None if val_data is None else Validator(
        val_data, f.val_list, os.path.join(f.checkpoint_dir, BEST_DIR), weights_saver,
        ckpt_path is None, say, dist, val_window)

    sess = tf.Session(config=npu_config.session_config(rt, dist.local_rank, dist.size))
    sess.run(tf.global_variables_initializer())
    if ckpt_path:
        fresh, unused = checkpoints.restore_matching(
            sess, ckpt_path, tf.global_variables(),
            network.model_variables() + [global_step, epoch_var], 'the training state')
        say('resumed from %s: epoch %d done, starting epoch %d' % (ckpt_path, done_epochs,
                                                                   first_epoch))
        if fresh or unused:  # another --device or --precision wrote it
            say('optimizer state from another device or precision: %s' % '; '.join(
                '%s %s' % (what, short_list(names)) for what, names in (
                    ('starting fresh:', fresh), ('not used:', unused)) if names))
    elif f.finetune_from:
        source = checkpoints.find(f.finetune_from)
        if source is None:
            raise cli.SidError('%s: no checkpoint to fine-tune from' % f.finetune_from)
        checkpoints.restore(weights_saver, sess, source, 'the U-Net weights')
        say('fine-tuning from the U-Net weights of %s (fresh optimizer state)' % source)
    sess.run(broadcast)

    writer = tf.summary.FileWriter(f.result_dir) if dist.is_chief else None
    stop = StopRequest()
    base_lr = f.learning_rate * (dist.size if f.scale_lr_by_world_size else 1)
    loss_scaled = rt.precision == 'mixed'  # skipped overflow steps are normal there
    last_saved = ckpt_path
    fetches = {'train': train_op, 'loss': loss, 'step': global_step, 'ready': ready}
    samples = {'output': outputs, 'target': targets, 'scene': scene_ids, 'ratio': ratios}

    def compiled(named):
        """A session callable: graph pruning and optimisation happen here, not inside a step
        (so the first step's time and input wait are the step's own)."""
        names = sorted(named)
        run = sess.make_callable([named[k] for k in names])
        return lambda: dict(zip(names, run()))
    steps_fn = {False: compiled(fetches)}  # the variant with sample outputs is made on first use

    def save(epoch_done):
        step = int(sess.run([set_epoch, global_step], {epoch_in: epoch_done})[1])
        return checkpoints.save(saver, sess, f.checkpoint_dir, step) if dist.is_chief else None

    if validate_first and validator is not None:
        say('validating epoch %d first: its validation did not finish, or %s did not match its '
            'record' % (done_epochs, validator.best_dir))
        if not validator(sess, done_epochs, int(sess.run(global_step)), writer, stop):
            sys.exit(128 + (stop.signum or signal.SIGTERM))  # or another rank's
    for epoch in range(first_epoch, f.epochs + 1):
        lr = learning_rate(epoch, base_lr, f.lr_drop_epoch)
        sess.run(set_lr, {lr_in: lr})
        keep_samples = dist.is_chief and epoch % f.save_freq == 0
        losses, waited, epoch_start = [], 0.0, time.time()
        bar = tqdm(total=steps, desc='epoch %d' % epoch, unit='step', leave=False,
                   disable=not (dist.is_chief and show_bar))
        for step in range(1, steps + 1):
            if keep_samples not in steps_fn:
                steps_fn[keep_samples] = compiled(dict(fetches, **samples))
            t0 = time.time()
            out = steps_fn[keep_samples]()
            dt = time.time() - t0
            if epoch == first_epoch and step == 1:
                say(FIRST_STEP_LOG % (t0, t0 - start))
            waited += max(0.0, float(np.max(out['ready'])) - t0)
            if not np.isfinite(out['loss']) and not loss_scaled:
                raise TrainingStopped(
                    'loss is %s at epoch %d step %d (global step %d); stopped, last good '
                    'checkpoint: %s' % (out['loss'], epoch, step, out['step'],
                                        last_saved or 'none yet'))
            losses.append(out['loss'])
            if show_bar:
                bar.set_postfix(loss='%.4f' % np.mean(losses), refresh=False)
                bar.update(1)
            else:
                say(STEP_LOG % (epoch, step, np.mean(losses), dt))
            if writer is not None:
                scalar_summary(writer, 'loss', out['loss'], out['step'])
            if keep_samples:
                save_sample(f.result_dir, epoch, out['scene'][0], out['ratio'][0],
                            out['target'][0], out['output'][0])
            if stop.signum is not None:
                # The interrupted epoch is not counted: a restart runs it again in full.
                last_saved = save(epoch - 1)
                say('stopped by signal %d at epoch %d step %d; saved %s'
                    % (stop.signum, epoch, step, last_saved))
                sys.stdout.flush()
                sys.exit(128 + stop.signum)
        bar.close()
        validating = validator is not None and epoch % f.val_every == 0
        if epoch % f.checkpoint_every == 0 or epoch == f.epochs or validating:
            last_saved = save(epoch)  # a best/ checkpoint always has a resumable one beside it
        if writer is not None:
            scalar_summary(writer, 'learning_rate', lr, out['step'])
            scalar_summary(writer, 'epoch_loss', np.mean(losses), out['step'])
            writer.flush()
        say(EPOCH_LOG % (epoch, steps, np.mean(losses), time.time() - epoch_start, waited, lr,
                         last_saved or 'none'))  # the newest checkpoint so far
        sys.stdout.flush()
        if validating:  # every rank, each its share of the pairs
            if not validator(sess, epoch, out['step'], writer, stop):
                signum = stop.signum or signal.SIGTERM  # or another rank's
                say('stopped by signal %d during the validation after epoch %d; saved %s'
                    % (signum, epoch, last_saved))
                sys.stdout.flush()
                sys.exit(128 + signum)
            sys.stdout.flush()
    if writer is not None:
        writer.close()


def define_flags():
    camera.define_flag()
    flags.DEFINE_string('data_dir', './dataset', 'dataset root holding Sony/ (Fuji/); list paths '
                        'are relative to it')
    flags.DEFINE_string('train_list', './Sony_train_list.txt', 'training pairs, official format')
    flags.DEFINE_string('checkpoint_dir', './checkpoint/Sony/', 'checkpoints (model.ckpt-*), '
                        'saved every --checkpoint_every epochs; training resumes from the latest '
                        'one here')
    flags.DEFINE_string('result_dir', './result_Sony/', 'sample JPGs (<epoch>/) and TensorBoard')
    flags.DEFINE_boolean('first_burst_only', False, 'train only on burst frame _00 of each '
                         'scene, as the official script does (default: every short exposure)')
    flags.DEFINE_string('cache_dir', '', 'decoded-raw cache; default <data_dir>/cache')
    flags.DEFINE_integer('cache_workers', 0, 'processes decoding raws into the cache; 0: '
                         'the cores this process may use, divided among the ranks on this '
                         'machine', lower_bound=0)
    flags.DEFINE_integer('crop_threads', CROP_THREADS_AUTO, 'threads cutting training crops '
                         'ahead of the step; 0: one per core, as for --cache_workers',
                         lower_bound=0)
    flags.DEFINE_integer('epochs', EPOCHS, 'train until this epoch (the paper: 4000; the seed: '
                         '1001)', lower_bound=1)
    flags.DEFINE_integer('ps', PATCH, 'patch size on the packed input (ground truth: 2x Sony, '
                         '3x Fuji)', lower_bound=1)
    flags.DEFINE_integer('batch_size', BATCH, 'patches per step (per rank)', lower_bound=1)
    flags.DEFINE_integer('save_freq', SAVE_FREQ, 'write sample JPGs every this many epochs',
                         lower_bound=1)
    flags.DEFINE_integer('checkpoint_every', CHECKPOINT_EVERY, 'save a checkpoint after every '
                         'epoch divisible by this, after the last one, before each validation '
                         'and when stopped by a signal; a kill -9 loses the epochs since',
                         lower_bound=1)
    flags.DEFINE_float('learning_rate', LEARNING_RATE, 'Adam learning rate', lower_bound=0.0)
    flags.DEFINE_integer('lr_drop_epoch', LR_DROP_EPOCH, 'learning rate / 10 after this epoch')
    flags.DEFINE_boolean('scale_lr_by_world_size', False, 'multiply the learning rate by the '
                         'number of ranks (the paper trains on one device)')
    flags.DEFINE_integer('seed', 0, 'seed of the weights and of the crop sampling',
                         lower_bound=0, upper_bound=MAX_SEED)
    flags.DEFINE_string('val_list', VAL_LIST, 'validation pairs (their burst _00 pairs are '
                        'scored); by default off when their files are missing; empty: off')
    flags.DEFINE_integer('val_every', VAL_EVERY, 'validate after every epoch divisible by this; '
                         'the best checkpoint goes to <checkpoint_dir>/%s/' % BEST_DIR,
                         lower_bound=1)
    flags.DEFINE_string('finetune_from', '', 'checkpoint (file prefix or folder) whose U-Net '
                        'weights start a fresh run; ignored when checkpoint_dir has one')
    flags.DEFINE_enum('progress', 'auto', PROGRESS_MODES, 'per-step output: "lines" prints a '
                      'parseable line per step (what the ModelZoo scripts read), "bar" one '
                      'progress bar per epoch; auto: the bar when stderr is a terminal')
    npu_config.define_flags(distributed=True)
    flags.adopt_module_key_flags(npu_config)  # --help lists --device, --precision, --distributed
    flags.adopt_module_key_flags(camera)  # and --camera


if __name__ == '__main__':
    cli.run(main, define_flags, hint='it reads its pairs from --train_list')
