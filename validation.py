"""Validation during training: the validation pairs, their scores at full resolution (the numbers
test_Sony.py + eval.py give), shared by all ranks, and the best checkpoint kept as one unit.

Each rank scores its share of the pairs; one all-reduce of a float32 score table combines them,
so no rank waits minutes inside a collective for another's whole validation. Rank 0 keeps
<checkpoint_dir>/best/: the U-Net weights with the best validation PSNR and their record
best.json, written and replaced together (safe_files.replace_folder).
"""
import json
import os
import time
from collections import OrderedDict, namedtuple

import numpy as np

import cli
import inference
import pipeline
import raw_cache
import raw_io
import safe_files
import sid_lists

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
# One validation's result: pairs, mean PSNR and SSIM, the best PSNR so far and its epoch, seconds.
Scores = namedtuple('Scores', 'pairs psnr ssim best_psnr best_epoch seconds')


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
    pairs = pipeline.training_pairs(sid_lists.read_list(val_list, data_dir, check_files=False),
                                    True)
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
    scores (so no rank waits minutes inside a collective for another's validation), rank 0 keeps
    the best checkpoint.

    The validation network is a second input on the training graph sharing the U-Net's weights
    (network.unet reuses variables), so it sees exactly the weights just trained. The scores
    travel as a float32 table (HCCL's all-reduce takes no float64), each pair in its own row and
    zeros elsewhere, so the sum is exact and the same on every rank; each float64 score is a
    float32 pair (split_float64) that keeps about 48 of its bits. The last row counts the ranks
    a signal stopped.
    """

    def __init__(self, data, val_list, best_dir, saver, fresh_start, say, dist, window=None):
        tf = cli.import_tensorflow()
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

    def __call__(self, sess, epoch, step, stop):
        """Validate after `epoch`: its Scores (the best so far is rank 0's), or None if a signal
        interrupted it on any rank."""
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
            return None
        psnr, ssim = (float(v) for v in np.mean(total[:n, 0::2] + total[:n, 1::2], axis=0))
        if self.dist.is_chief:
            if self.best is None or psnr > self.best['psnr']:
                self.best = keep_best(self.saver, sess, self.best_dir, step, dict(
                    self.identity, epoch=epoch, global_step=int(step), psnr=psnr, ssim=ssim,
                    ssim_protocol=VAL_SSIM, val_list=self.val_list))
            else:
                self.best = note_validated(self.best_dir, self.best, epoch)
        best = self.best or {'psnr': float('nan'), 'epoch': 0}
        return Scores(n, psnr, ssim, best['psnr'], best['epoch'], time.time() - start)


def split_float64(values):
    """float64 values as float32 pairs (high, low), interleaved: high + low (summed in float64)
    gives each value to about 48 bits, where float32 alone keeps 24."""
    values = np.asarray(values, np.float64)
    high = values.astype(np.float32)
    low = (values - high).astype(np.float32)
    return np.stack([high, low], axis=-1).reshape(-1)
