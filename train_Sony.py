"""Train the SID U-Net on the Sony set (Chen et al., "Learning to See in the Dark", CVPR 2018),
or with --camera=Fuji (train_Fuji.py) on the Fuji X-Trans set.

The paper's recipe (Section 3.2 and the authors' train_Sony.py): every step takes one training
scene, one of its short exposures at random, the ratio-amplified packed raw clipped at 1, a random
512 x 512 crop (1024 x 1024 of the ground truth at the same place), random vertical flip,
horizontal flip and transpose, L1 loss, Adam at 1e-4 dropping to 1e-5 after epoch 2000.

What differs from the official script is how, not what:
- raws are decoded once into an on-disk uint16 cache (raw_cache.py) and crops are cut from
  memory maps, so memory stays flat in the dataset size instead of 64+ GB of float32;
- a tf.data pipeline (pipeline.py; a GetNext-fed graph, as Ascend's iterations_per_loop needs)
  cuts, amplifies and flips crops in parallel threads ahead of the step;
- validation during training (validation.py) keeps the best checkpoint in <checkpoint_dir>/best/;
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
import pipeline
import raw_cache
import safe_files
import sid_lists
import validation

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
LR_VAR = 'learning_rate'  # checkpointed training state besides global_step and the epoch
MAX_SEED = 2 ** 32 - 1        # numpy seeds (epoch_rng) are 32-bit
SAMPLE_DIR = '%04d'
SAMPLE_NAME = '%05d_00_train_%d.jpg'  # scene id, ratio (the official names)
JPEG_QUALITY = 95
# tf.data map threads cutting crops (numpy releases the GIL): by default one per core this rank
# has (npu_config.Distribution.cores); a fast device on a host with cores to spare needs them.
CROP_THREADS_AUTO = 0

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
DONE_LOG = 'trained to epoch %d; the newest checkpoint is %s'
VAL_LOG = ('Validation epoch %d: pairs=%d psnr=%.4f ssim=%.4f best_psnr=%.4f best_epoch=%d '
           'seconds=%.1f')
VAL_LOG_RE = re.compile(r'^Validation epoch (\d+): pairs=(\d+) psnr=%s ssim=%s best_psnr=%s '
                        r'best_epoch=(\d+) seconds=%s$' % ((_FLOAT,) * 4))


class TrainingStopped(cli.SidError):
    """Training cannot go on (non-finite loss): one line naming the step, exit 1."""


def learning_rate(epoch, base=LEARNING_RATE, drop_epoch=LR_DROP_EPOCH):
    """The paper's schedule: `base` up to and including `drop_epoch`, a tenth of it afterwards."""
    return base if epoch <= drop_epoch else base * LR_DROP_FACTOR


def save_sample(result_dir, epoch, scene_id, ratio, target, output):
    """Ground truth | output side by side, 8-bit JPG, written atomically."""
    from PIL import Image
    image = np.concatenate([target, np.clip(output, 0.0, 1.0)], axis=1)
    path = os.path.join(result_dir, SAMPLE_DIR % epoch, SAMPLE_NAME % (scene_id, int(round(ratio))))
    with safe_files.atomic_path(path) as tmp:
        Image.fromarray((image * 255.0 + 0.5).astype(np.uint8)).save(tmp, 'JPEG',
                                                                     quality=JPEG_QUALITY)


def scalar_summary(writer, tag, value, step):
    """Host-side TensorBoard scalar: no summary ops in the device graph."""
    tf = cli.import_tensorflow()
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


# ---------------------------------------------------------------- the run, in four parts

# What prepare_data checked: the pairs, this rank's scenes, their shapes, steps per epoch, and
# the training and validation data in the cache (val None: validation off).
Data = namedtuple('Data', 'pairs scenes mine shapes steps train val_pairs val cache_dir')


def prepare_data(f, profile, dist, say):
    """Every training and validation file checked, decoded into the cache and shape-checked
    before step 1: a bad file stops the run now, in one line, not hours into it."""
    train_list = camera.required_list(f, 'train_list', profile)
    pairs = pipeline.training_pairs(sid_lists.read_list(train_list, f.data_dir),
                                    f.first_burst_only)
    if not pairs:
        raise cli.SidError('%s: the training list has no pairs%s' % (
            f.train_list, ' of burst frame _00' if f.first_burst_only else ''))
    val_pairs = validation.validation_pairs(f.val_list, f['val_list'].present, f.data_dir, say)
    scenes = pipeline.group_scenes(pairs)
    mine = OrderedDict((s, scenes[s]) for s in dist.shard(list(scenes)))
    if not mine:
        raise cli.SidError('%s: %d scenes cannot feed %d ranks' % (f.train_list, len(scenes),
                                                                   dist.size))
    my_pairs = [i for members in mine.values() for i in members]
    cache_dir = f.cache_dir or os.path.join(f.data_dir, 'cache')
    raws = camera.cache_jobs([pairs[i] for i in my_pairs], profile)
    if val_pairs:  # every rank validates its share
        raws += camera.cache_jobs(dist.shard(val_pairs), profile)
    safe_files.require_writable_dir(cache_dir, 'the decoded-raw cache')
    entries = raw_cache.build_cache(raws, cache_dir, f.data_dir, f.cache_workers or dist.cores(),
                                    progress=dist.is_chief)
    train = pipeline.CachedPairs(pairs, entries, profile)
    shapes = train.check_shapes(my_pairs, f.ps)
    val = pipeline.CachedPairs(val_pairs, entries, profile) if val_pairs else None
    if val is not None:  # any size: full-resolution inference
        val.check_shapes(dist.shard(list(range(len(val_pairs)))), 1)
    steps = pipeline.steps_per_epoch(len(scenes), dist.size, f.batch_size)
    return Data(pairs, scenes, mine, shapes, steps, train, val_pairs, val, cache_dir)


# The training graph's parts the loop runs: the step's fetches, the sample outputs, the savers,
# and the ops that set the checkpointed epoch and learning rate and broadcast rank 0's weights.
Graph = namedtuple('Graph', 'fetches samples weights_saver saver global_step epoch_var set_epoch '
                            'epoch_in set_lr lr_in broadcast')


def build_graph(f, rt, dist, data, first_epoch, crop_threads, profile):
    """pipeline -> U-Net -> L1 -> Adam, wrapped for the device and the world."""
    tf = cli.import_tensorflow()
    import checkpoints
    import network

    def all_crops():
        for epoch in range(first_epoch, f.epochs + 1):
            for crop in pipeline.epoch_crops(data.mine, data.shapes, f.ps,
                                             data.steps * f.batch_size,
                                             pipeline.epoch_rng(f.seed, epoch, dist.rank)):
                yield crop
    tf.set_random_seed(f.seed)
    inputs, targets, scene_ids, ratios, ready = pipeline.input_pipeline(
        data.train, all_crops, f.ps, f.batch_size, crop_threads)
    outputs = network.unet(inputs, profile.block)
    # Before the optimizer exists: model_variables() matches names, and Adam's slots of the U-Net
    # weights (g_conv1_1/weights/Adam) would match too.
    weights_saver = tf.train.Saver(network.model_variables())
    loss = tf.reduce_mean(tf.abs(outputs - targets))
    global_step = tf.train.get_or_create_global_step()
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name=checkpoints.EPOCH_VAR)
    lr_var = tf.Variable(f.learning_rate, dtype=tf.float32, trainable=False, name=LR_VAR)
    epoch_in, lr_in = tf.placeholder(tf.int64, []), tf.placeholder(tf.float32, [])
    optimizer = npu_config.wrap_optimizer(tf.train.AdamOptimizer(lr_var), rt, dist)
    train_op = optimizer.minimize(loss, global_step=global_step)
    return Graph({'train': train_op, 'loss': loss, 'step': global_step, 'ready': ready},
                 {'output': outputs, 'target': targets, 'scene': scene_ids, 'ratio': ratios},
                 weights_saver, tf.train.Saver(), global_step, epoch_var,
                 tf.assign(epoch_var, epoch_in), epoch_in, tf.assign(lr_var, lr_in), lr_in,
                 dist.broadcast_op())


def start_session(f, rt, dist, graph, ckpt_path, done_epochs, say):
    """The session with the weights to start from: the checkpoint to resume (written on any
    device or precision: what cannot carry over is one line), or --finetune_from's U-Net weights,
    or fresh ones; then rank 0's broadcast to every rank."""
    tf = cli.import_tensorflow()
    import checkpoints
    import network
    sess = tf.Session(config=npu_config.session_config(rt, dist.local_rank, dist.size))
    sess.run(tf.global_variables_initializer())
    if ckpt_path:
        fresh, unused = checkpoints.restore_matching(
            sess, ckpt_path, tf.global_variables(),
            network.model_variables() + [graph.global_step, graph.epoch_var], 'the training state')
        say('resumed from %s: epoch %d done, starting epoch %d' % (ckpt_path, done_epochs,
                                                                   done_epochs + 1))
        if fresh or unused:  # another --device or --precision wrote it
            say('optimizer state from another device or precision: %s' % '; '.join(
                '%s %s' % (what, cli.short_list(names)) for what, names in (
                    ('starting fresh:', fresh), ('not used:', unused)) if names))
    elif f.finetune_from:
        source = checkpoints.find(f.finetune_from)
        if source is None:
            raise cli.SidError('%s: no checkpoint to fine-tune from' % f.finetune_from)
        checkpoints.restore(graph.weights_saver, sess, source, 'the U-Net weights')
        say('fine-tuning from the U-Net weights of %s (fresh optimizer state)' % source)
    sess.run(graph.broadcast)
    return sess


class Log(object):
    """Where the run's lines go. --log_file gets every one (plot_training.py and parse_log.py read
    them); stdout gets every one with --progress=lines (the ModelZoo launchers' logs), or under a
    progress bar all but the per-step and per-epoch `detail` lines: a terminal then shows the
    start, one bar for the whole run, and one line per validation. Only rank 0 logs."""

    def __init__(self, path, chief, bar):
        self.chief, self.bar = chief, None
        self.file = open(path, 'a', buffering=1) if path and chief else None
        self.quiet_details = bar

    def __call__(self, line, detail=False):
        if not self.chief:
            return
        if self.file is not None:
            self.file.write(line + '\n')
        if detail and self.quiet_details:
            return
        if self.bar is not None:
            self.bar.write(line)  # above the bar, which stays at the bottom
        else:
            print(line)
        sys.stdout.flush()


class Epochs(object):
    """The training loop's state across epochs: the session's step functions, the newest
    checkpoint, the log, the summaries and the progress bar."""

    def __init__(self, f, sess, graph, dist, rt, steps, start, first_epoch, last_saved, log):
        from tqdm import tqdm
        self.f, self.sess, self.graph, self.dist, self.steps = f, sess, graph, dist, steps
        self.start, self.last_saved, self.log = start, last_saved, log
        self.loss_scaled = rt.precision == 'mixed'  # skipped overflow steps are normal there
        self.writer = None
        if dist.is_chief:
            tf = cli.import_tensorflow()
            self.writer = tf.summary.FileWriter(f.result_dir)
        if log.quiet_details and dist.is_chief:  # one bar for the whole run
            log.bar = tqdm(total=steps * (f.epochs - first_epoch + 1), unit='step',
                           desc='training', dynamic_ncols=True)
        self.step_fns = {}  # with and without sample outputs, each made on first use
        self.first = True

    def step_fn(self, keep_samples):
        """A session callable: graph pruning and optimisation happen here, not inside a step
        (so the first step's time and input wait are the step's own)."""
        if keep_samples not in self.step_fns:
            named = dict(self.graph.fetches, **(self.graph.samples if keep_samples else {}))
            names = sorted(named)
            run = self.sess.make_callable([named[k] for k in names])
            self.step_fns[keep_samples] = lambda: dict(zip(names, run()))
        return self.step_fns[keep_samples]

    def save(self, epoch_done):
        """A checkpoint with `epoch_done` as its epoch (rank 0 writes it); its path or None."""
        step = int(self.sess.run([self.graph.set_epoch, self.graph.global_step],
                                 {self.graph.epoch_in: epoch_done})[1])
        if self.dist.is_chief:
            import checkpoints
            self.last_saved = checkpoints.save(self.graph.saver, self.sess, self.f.checkpoint_dir,
                                               step)
        return self.last_saved

    def run(self, epoch, lr, stop):
        """One epoch of steps; (mean loss, input wait s, last global step). A signal saves the
        epoch before and exits 128 + the signal: the interrupted epoch runs again in full."""
        f, bar = self.f, self.log.bar
        self.sess.run(self.graph.set_lr, {self.graph.lr_in: lr})
        keep_samples = self.dist.is_chief and epoch % f.save_freq == 0
        losses, waited = [], 0.0
        for step in range(1, self.steps + 1):
            run = self.step_fn(keep_samples)
            t0 = time.time()
            out = run()
            dt = time.time() - t0
            if self.first:
                self.log(FIRST_STEP_LOG % (t0, t0 - self.start), detail=True)
                self.first = False
            waited += max(0.0, float(np.max(out['ready'])) - t0)
            if not np.isfinite(out['loss']) and not self.loss_scaled:
                raise TrainingStopped(
                    'loss is %s at epoch %d step %d (global step %d); stopped, last good '
                    'checkpoint: %s' % (out['loss'], epoch, step, out['step'],
                                        self.last_saved or 'none yet'))
            losses.append(out['loss'])
            self.log(STEP_LOG % (epoch, step, np.mean(losses), dt), detail=True)
            if bar is not None:
                bar.set_postfix(epoch=epoch, loss='%.4f' % np.mean(losses), refresh=False)
                bar.update(1)
            if self.writer is not None:
                scalar_summary(self.writer, 'loss', out['loss'], out['step'])
            if keep_samples:
                save_sample(f.result_dir, epoch, out['scene'][0], out['ratio'][0],
                            out['target'][0], out['output'][0])
            if stop.signum is not None:
                self.log('stopped by signal %d at epoch %d step %d; saved %s'
                         % (stop.signum, epoch, step, self.save(epoch - 1)))
                self.exit(stop.signum)
        return float(np.mean(losses)), waited, int(out['step'])

    def summary(self, step, **scalars):
        if self.writer is not None:
            for tag, value in sorted(scalars.items()):
                scalar_summary(self.writer, tag, value, step)
            self.writer.flush()

    def close(self):
        if self.log.bar is not None:
            self.log.bar.close()
            self.log.bar = None
        if self.writer is not None:
            self.writer.close()

    def exit(self, signum):
        self.close()
        sys.stdout.flush()
        sys.exit(128 + signum)


def validate_logged(validator, loop, epoch, step, stop):
    """Validate after `epoch` and log it; a signal during it (on any rank) ends the run."""
    scores = validator(loop.sess, epoch, step, stop)
    if scores is None:
        signum = stop.signum or signal.SIGTERM  # or another rank's
        loop.log('stopped by signal %d during the validation after epoch %d; saved %s'
                 % (signum, epoch, loop.last_saved))
        loop.exit(signum)
    loop.log(VAL_LOG % ((epoch,) + tuple(scores)))
    loop.summary(step, val_psnr=scores.psnr, val_ssim=scores.ssim)


# ---------------------------------------------------------------- training

def main(argv):
    del argv
    start = time.time()
    f = flags.FLAGS
    profile, rt = camera.from_flags(), npu_config.runtime_from_flags()
    dist = npu_config.Distribution(f.distributed)
    say = Log(f.log_file, dist.is_chief,
              f.progress == 'bar' or (f.progress == 'auto' and sys.stderr.isatty()))
    say(npu_config.describe(rt) + ', rank %d of %d' % (dist.rank, dist.size))
    if dist.is_chief and os.path.isdir(f.checkpoint_dir):  # before the cache needs disk space
        claim(f.checkpoint_dir, say)

    data = prepare_data(f, profile, dist, say)
    crop_threads = f.crop_threads or dist.cores()
    say('%s: %d pairs in %d scenes (%d on this rank), %d steps of batch %d per epoch, cache %s, '
        '%d crop threads' % (profile.name, len(data.pairs), len(data.scenes), len(data.mine),
                             data.steps, f.batch_size, data.cache_dir, crop_threads))
    best_dir = os.path.join(f.checkpoint_dir, validation.BEST_DIR)
    if data.val is not None:
        say('validation every %d epochs on %d burst _00 pairs of %s, best checkpoint in %s'
            % (f.val_every, len(data.val_pairs), f.val_list, best_dir))
    if dist.is_chief:  # the data is sound: now the outputs, before hours of training
        safe_files.require_writable_dir(f.checkpoint_dir, 'checkpoints')
        claim(f.checkpoint_dir, say)
        safe_files.require_writable_dir(f.result_dir, 'samples and TensorBoard logs')
    import checkpoints  # TensorFlow from here on: the inputs are sound
    ckpt_path, done_epochs = checkpoints.resume_point(f.checkpoint_dir, say)
    first_epoch = done_epochs + 1
    # A kill during the last validation, or a best/ its record does not describe: validate first.
    validate_first = validation.validation_due(best_dir, data.val_pairs, done_epochs, f.val_every)
    if first_epoch > f.epochs and not validate_first:
        say('%s already holds epoch %d of %d: nothing to do' % (ckpt_path, done_epochs, f.epochs))
        return

    graph = build_graph(f, rt, dist, data, first_epoch, crop_threads, profile)
    validator = None if data.val is None else validation.Validator(
        data.val, f.val_list, best_dir, graph.weights_saver, ckpt_path is None, say, dist,
        inference.fixed_window(validation.VAL_TILE, inference.DEFAULT_TILE_OVERLAP, None)
        if npu_config.uses_fixed_shapes(rt) else None)  # one shape for the NPU's compiler
    sess = start_session(f, rt, dist, graph, ckpt_path, done_epochs, say)
    loop = Epochs(f, sess, graph, dist, rt, data.steps, start, first_epoch, ckpt_path, say)
    stop = StopRequest()
    if validate_first and validator is not None:
        say('validating epoch %d first: its validation did not finish, or %s did not match its '
            'record' % (done_epochs, best_dir))
        validate_logged(validator, loop, done_epochs, int(sess.run(graph.global_step)), stop)
    base_lr = f.learning_rate * (dist.size if f.scale_lr_by_world_size else 1)
    for epoch in range(first_epoch, f.epochs + 1):
        lr, epoch_start = learning_rate(epoch, base_lr, f.lr_drop_epoch), time.time()
        loss, waited, step = loop.run(epoch, lr, stop)
        validating = validator is not None and epoch % f.val_every == 0
        if epoch % f.checkpoint_every == 0 or epoch == f.epochs or validating:
            loop.save(epoch)  # a best/ checkpoint always has a resumable one beside it
        loop.summary(step, learning_rate=lr, epoch_loss=loss)
        say(EPOCH_LOG % (epoch, data.steps, loss, time.time() - epoch_start, waited, lr,
                         loop.last_saved or 'none'), detail=True)  # the newest checkpoint so far
        if validating:  # every rank, each its share of the pairs
            validate_logged(validator, loop, epoch, step, stop)
    loop.close()
    say(DONE_LOG % (f.epochs, loop.last_saved))


def claim(checkpoint_dir, say):
    """Rank 0 holds --checkpoint_dir for the run, and clears what a killed save left there."""
    import checkpoints
    safe_files.lock_folder(checkpoint_dir, '--checkpoint_dir')
    removed = checkpoints.remove_leftovers(checkpoint_dir)
    if removed:
        say('removed %d leftovers of an interrupted save from %s (%s)'
            % (len(removed), checkpoint_dir, ', '.join(removed)))


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
    flags.DEFINE_string('val_list', validation.VAL_LIST, 'validation pairs (their burst _00 pairs '
                        'are scored); by default off when their files are missing; empty: off')
    flags.DEFINE_integer('val_every', validation.VAL_EVERY, 'validate after every epoch divisible '
                         'by this; the best checkpoint goes to <checkpoint_dir>/%s/'
                         % validation.BEST_DIR,
                         lower_bound=1)
    flags.DEFINE_string('finetune_from', '', 'checkpoint (file prefix or folder) whose U-Net '
                        'weights start a fresh run; ignored when checkpoint_dir has one')
    flags.DEFINE_enum('progress', 'auto', PROGRESS_MODES, 'per-step output: "lines" prints a '
                      'parseable line per step and epoch (what the ModelZoo scripts read), '
                      '"bar" one progress bar for the run and a line per validation; auto: the '
                      'bar when stderr is a terminal')
    flags.DEFINE_string('log_file', '', 'also append every log line (steps, epochs, '
                        'validations) to this file, whatever --progress shows')
    npu_config.define_flags(distributed=True)
    flags.adopt_module_key_flags(npu_config)  # --help lists --device, --precision, --distributed
    flags.adopt_module_key_flags(camera)  # and --camera


if __name__ == '__main__':
    cli.run(main, define_flags, hint='it reads its pairs from --train_list')
