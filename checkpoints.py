"""Checkpoints, once: which one a folder holds, whether it fits the network, and saving that
survives copies, restarts, kills and full disks. train_Sony.py and test_Sony.py use it.

TensorFlow's own helpers fall short in four ways this module covers:
- The `checkpoint` state file records absolute paths by default, so a copied folder resumed from
  the original's files and a moved one was refused; TF 1.15's tf.train.latest_checkpoint even
  raises when the recorded path is another machine's (the released model's is). Here a recorded
  name is looked up by its basename inside the folder given, and new state files record names
  relative to their folder.
- Saver(max_to_keep) forgets what earlier processes saved: every restart left two more
  checkpoints behind. save() keeps the newest KEEP in the folder, whoever wrote them.
- A kill or a full disk during a save leaves TensorFlow's temporaries (tens of MB each);
  remove_temporaries() clears them before a run writes into the folder again.
- Restoring a truncated checkpoint fails deep inside a session run. verify() reads every tensor
  back first (each one carries a CRC32C in the .index), so training can fall back to the
  previous checkpoint, which is kept for exactly that.
"""
import errno
import glob
import os
import re

import camera
import cli
import safe_files

tf = cli.import_tensorflow()  # quietly, in graph mode, whoever imports this first

NAME = 'model.ckpt'     # train_Sony.py saves <NAME>-<global step>.{index,data-00000-of-00001}
EPOCH_VAR = 'epoch'     # the last completed epoch, in every train_Sony.py checkpoint
STATE_FILE = 'checkpoint'  # TensorFlow's state file: which checkpoint is the newest
KEEP = 2                # the previous checkpoint survives anything that happens to the newest
INDEX = '.index'
# Temporaries of an interrupted save: TensorBundle's <file>.tempstate<random> (data and index),
# TensorFlow's atomic writes <file>.tmp<uuid4 hex> (state file, meta graph), and safe_files'
# .tmp-* (atomic_path, used for the state file here and for the result PNGs).
TEMPORARY_RE = re.compile(r'(\.tempstate\d+|\.tmp[0-9a-f]{32})$|^\.tmp-')
ORPHAN_RE = re.compile(r'^(%s-\d+)\.(data-\d{5}-of-\d{5}|meta)$' % re.escape(NAME))
STEP_RE = re.compile(r'-(\d+)$')
NO_SPACE_TEXT = ('No space left on device', 'Disk quota exceeded')


def error_line(error):
    """The informative line of a multi-line TensorFlow error (the missing key, the bad shape)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines
              if re.search(r'not found|shape|Unsuccessful|corrupt|Checksum|less bytes|No such|'
                           r'No space|quota|too large|Permission', line)]
    return (useful or lines or [type(error).__name__])[0]


# ---------------------------------------------------------------- finding

def step_of(prefix):
    """The global step in a `<name>-<step>` prefix, or -1 (the released `model.ckpt` has none)."""
    m = STEP_RE.search(os.path.basename(prefix))
    return int(m.group(1)) if m else -1


def mtime(path):
    """Modification time, 0 for a file another process just deleted."""
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def recorded(folder):
    """The basename of the checkpoint the state file calls newest, or None.

    Only the basename counts: the recorded path may be absolute and belong to the folder this
    one was copied from, or to another machine.
    """
    state = tf.train.get_checkpoint_state(folder)  # None when missing or unparsable
    if state is None or not state.model_checkpoint_path:
        return None
    return os.path.basename(state.model_checkpoint_path.rstrip('/\\'))


def prefixes(folder):
    """Checkpoint prefixes in `folder`, newest first.

    The one the state file names comes first (a save is complete once the state names it), then
    the others by global step and modification time. Only files in this folder count.
    """
    if not os.path.isdir(folder):
        return []
    found = [os.path.join(folder, n[:-len(INDEX)]) for n in os.listdir(folder)
             if n.endswith(INDEX) and not TEMPORARY_RE.search(n)]
    found.sort(key=lambda p: (step_of(p), mtime(p + INDEX)), reverse=True)
    newest = recorded(folder)
    first = [p for p in found if os.path.basename(p) == newest]
    return first + [p for p in found if p not in first]


# What a folder without any checkpoint is told: the names training and the authors' release write.
NOT_FOUND = ('%s: no checkpoint found (expected model.ckpt-<step>.index, as train_Sony.py writes, '
             'or the released model.ckpt.index); train with train_Sony.py or download the '
             'authors\' model - refusing to run random weights')


def find(path):
    """The checkpoint prefix for a folder (its newest checkpoint) or a prefix; None if there is
    none. A prefix may also name a V1 single-file checkpoint."""
    if os.path.isdir(path):
        found = prefixes(path)
        return found[0] if found else None
    if os.path.isfile(path + INDEX) or os.path.isfile(path):
        return path
    return None


# ---------------------------------------------------------------- checking

def verify(prefix, names=None):
    """Read the tensors `names` (default: all) of a checkpoint back, or raise a one-line SidError.

    Reading checks each tensor's CRC32C from the .index, so this finds a truncated or corrupted
    data file before a session restore would. Costs one read of the file (93 MB for a training
    checkpoint: well under a second).
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in sorted(reader.get_variable_to_shape_map() if names is None else names):
            reader.get_tensor(name)
    # TF 2.x raises IndexError for a short read, TF 1.15 OutOfRangeError.
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as e:
        raise cli.SidError('%s: unreadable checkpoint (%s)' % (prefix, error_line(e)))


def stored_shapes(prefix):
    """{variable name: shape} of a checkpoint, or a one-line SidError."""
    try:
        return dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as e:
        raise cli.SidError('%s: unreadable checkpoint (%s)' % (prefix, error_line(e)))


def check(prefix, variables):
    """Every variable must be in the checkpoint with the same shape, and readable; else a
    one-line SidError.

    A Saver would fail on a missing variable too, but with a page of graph dump; a silently
    partial restore is how the original code produced all-black outputs.
    """
    stored = stored_shapes(prefix)
    missing = [v.op.name for v in variables if v.op.name not in stored]
    if missing:
        raise cli.SidError('%s: checkpoint lacks %d of the %d U-Net variables (first: %s); is '
                           'it a SID Sony checkpoint?' % (prefix, len(missing), len(variables),
                                                          missing[0]))
    for v in variables:
        want, have = v.shape.as_list(), list(stored[v.op.name])
        if have != want:
            raise cli.SidError('%s: variable %s has shape %s in the checkpoint, the network '
                               'needs %s%s' % (prefix, v.op.name, have, want,
                                               camera.model_hint(v.op.name, have, want)))
    verify(prefix, [v.op.name for v in variables])


def newest_intact(folder):
    """(the newest checkpoint in `folder` that reads back completely, or None; [SidError of each
    newer one that does not])."""
    skipped = []
    for prefix in prefixes(folder):
        try:
            verify(prefix)
            return prefix, skipped
        except cli.SidError as e:
            skipped.append(e)
    return None, skipped


def restore(saver, sess, prefix, what):
    try:
        saver.restore(sess, prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise cli.SidError('%s: cannot restore %s (%s)' % (prefix, what, error_line(e)))


# Scopes that tf.cond puts around what it creates: npu_bridge's NPULossScaleOptimizer applies Adam
# inside a cond, so an NPU mixed-precision checkpoint holds cond/beta1_power where one written on
# the CPU (or with --precision=fp32) holds beta1_power. Same variable, same meaning.
COND_SCOPE_RE = re.compile(r'^(cond(_\d+)?/)+')


def restore_matching(sess, prefix, variables, required, what):
    """Restore `variables` from a checkpoint written by another device or precision; returns
    (names that start fresh, checkpoint names left unused).

    Each variable takes the checkpoint's tensor of its own name, or of the same name inside or
    outside a cond scope (COND_SCOPE_RE) when exactly one such tensor has its shape. The
    `required` variables (the U-Net, step, epoch) must all be there: else a one-line SidError,
    like a Saver's restore of a wrong checkpoint. The rest - loss-scale state that only NPU mixed
    precision keeps, for example - starts from its initial value.
    """
    stored = stored_shapes(prefix)
    plain = {}
    for name in stored:
        plain.setdefault(COND_SCOPE_RE.sub('', name), []).append(name)
    var_list, fresh = {}, []
    for v in variables:
        name, shape = v.op.name, v.shape.as_list()
        sources = [name] if name in stored else plain.get(COND_SCOPE_RE.sub('', name), [])
        sources = [n for n in sources if list(stored[n]) == shape]
        if len(sources) == 1:
            var_list[sources[0]] = v
        else:
            fresh.append(name)
    for v in required:
        if v.op.name in fresh:
            have = stored.get(v.op.name)
            raise cli.SidError('%s: cannot restore %s (%s %s)' % (
                prefix, what, v.op.name, 'is not in the checkpoint' if have is None else
                'has shape %s in the checkpoint, the graph %s' % (list(have), v.shape.as_list())))
    restore(tf.train.Saver(var_list=var_list), sess, prefix, what)
    return fresh, sorted(set(stored) - set(var_list))


def resume_point(checkpoint_dir, say):
    """(checkpoint to resume from or None, last completed epoch) - from the checkpoint, not folders.

    The newest checkpoint that reads back completely: an unreadable newer one (truncated by a
    full disk, say) is skipped with one line, the previous one is kept for exactly this.
    """
    path, skipped = newest_intact(checkpoint_dir)
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
                           '--checkpoint_dir' % (path, error_line(e)))


# ---------------------------------------------------------------- saving and cleaning

def remove_leftovers(folder):
    """Delete what interrupted saves and deletions left in `folder`; returns the names.

    That is temporaries (TEMPORARY_RE; safe_files' `.tmp-*` folders too: a best/ being built) and
    data or meta files of a `model.ckpt-<step>` whose index is gone (a kill between TensorFlow's
    data and index renames, or inside a deletion).
    Only for a folder no live process writes to: callers hold safe_files.lock_folder on it first.
    """
    if not os.path.isdir(folder):
        return []
    removed = safe_files.remove_temporaries(folder, lambda name: True)
    names = sorted(os.listdir(folder))
    for name in names:
        orphan = ORPHAN_RE.match(name)
        if (TEMPORARY_RE.search(name) or orphan and orphan.group(1) + INDEX not in names) \
                and os.path.isfile(os.path.join(folder, name)):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except FileNotFoundError:
                pass
    return sorted(removed)


def remove_checkpoint(prefix):
    """Index first: a checkpoint without its index is invisible, one without data is not."""
    for path in sorted(glob.glob(glob.escape(prefix) + '.*'), key=lambda p: not p.endswith(INDEX)):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def write_state(folder, newest, kept):
    """The state file naming `newest` and `kept` (oldest first) relative to `folder`, so that a
    copied or moved folder still names its own files. Written atomically."""
    from google.protobuf import text_format
    state = tf.train.generate_checkpoint_state_proto(
        os.path.abspath(folder), os.path.basename(newest), [os.path.basename(p) for p in kept])
    with safe_files.atomic_write(os.path.join(folder, STATE_FILE), 'w') as f:
        f.write(text_format.MessageToString(state))


def no_space(error):
    return (isinstance(error, tf.errors.ResourceExhaustedError)  # TF's code for ENOSPC, EDQUOT
            or getattr(error, 'errno', None) in (errno.ENOSPC, errno.EDQUOT)
            or any(text in str(error) for text in NO_SPACE_TEXT))


def save(saver, sess, folder, step, keep=KEEP):
    """Save `<folder>/model.ckpt-<step>`, record it, then delete all but the newest `keep`.

    The order makes a kill at any point harmless: TensorFlow writes data and index under
    temporary names, the state file changes (atomically) only once both are complete, and older
    checkpoints go only after that. A failed save (full disk, ...) removes what it wrote and
    raises one line naming the last good checkpoint.
    """
    path = os.path.join(folder, '%s-%d' % (NAME, step))
    try:
        os.makedirs(folder, exist_ok=True)
        saver.save(sess, os.path.join(folder, NAME), global_step=step, write_meta_graph=False,
                   write_state=False)
        others = [p for p in prefixes(folder) if p != path and step_of(p) >= 0]
        # Later steps than this one are leftovers of a run this one did not resume from.
        older = sorted((p for p in others if step_of(p) < step),
                       key=lambda p: (step_of(p), mtime(p + INDEX)))
        kept = older[len(older) - (keep - 1):] if keep > 1 else []
        dropped = [p for p in others if p not in kept]
        write_state(folder, path, kept + [path])
    except (tf.errors.OpError, OSError) as e:
        if os.path.basename(path) != recorded(folder):
            remove_checkpoint(path)
        remove_leftovers(folder)
        last = find(folder) or 'none yet'
        if no_space(e):
            raise cli.SidError('no space left on %s; the last good checkpoint is %s'
                               % (folder, last))
        raise cli.SidError('%s: cannot save a checkpoint (%s); the last good checkpoint is %s'
                           % (folder, error_line(e).split('; ')[-1], last))
    for old in dropped:
        remove_checkpoint(old)
    return path
