"""Data-parallel training for real: two Horovod workers over Gloo on the CPU, and the HCCL wiring of
train_Sony.py through the npu_bridge/hccl test double (tests/fakes).

The Horovod run gives each rank a different --seed, so identical variables at the end prove both
the initial broadcast from rank 0 and the gradient averaging; each rank gets its own output
folders, so anything a non-chief rank writes would show up there.
"""
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import ROOT, needs_horovod
from train_Sony import STEP_LOG_RE, VAL_LOG_RE

FAKES = os.path.join(ROOT, 'tests', 'fakes')
RANK_TABLE = os.path.join(ROOT, 'scripts', 'modelzoo', 'rank_table_8p.json')
WORLD = 2
PS = 32
TIMEOUT = 300
LAUNCHER_LINE_RE = re.compile(r'^\[(\d+)\]<stdout>:(.*)$')
DIGEST_RE = re.compile(r'^VARIABLES rank=(\d+) count=(\d+) digest=([0-9a-f]{64})$')

# Runs train_Sony.main() under horovodrun, then prints a digest of this rank's variables read from
# the training's own session (kept by a Session subclass; nothing is replaced or faked).
PROBE = r'''
import hashlib, os, sys
import numpy as np
import tensorflow.compat.v1 as tf
from absl import app
import train_Sony

SESSIONS = []


class KeptSession(tf.Session):
    def __init__(self, *args, **kwargs):
        super(KeptSession, self).__init__(*args, **kwargs)
        SESSIONS.append(self)


def main(argv):
    train_Sony.main(argv)
    sess = SESSIONS[-1]
    with sess.graph.as_default():
        variables = sorted(tf.global_variables(), key=lambda v: v.op.name)
    digest = hashlib.sha256()
    for v, value in zip(variables, sess.run(variables)):
        digest.update(v.op.name.encode() + np.ascontiguousarray(value).tobytes())
    print('VARIABLES rank=%s count=%d digest=%s'
          % (os.environ['HOROVOD_RANK'], len(variables), digest.hexdigest()))


rank = int(os.environ['HOROVOD_RANK'])
sys.argv += [a.replace('{rank}', str(rank)) for a in sys.argv.pop().split()]
tf.Session = KeptSession
train_Sony.define_flags()
app.run(main)
'''


def checkpoint_digest(path):
    """The same digest over a checkpoint's tensors (what rank 0 saved)."""
    reader = tf.train.load_checkpoint(path)
    digest = hashlib.sha256()
    for name in sorted(reader.get_variable_to_shape_map()):
        digest.update(name.encode() + np.ascontiguousarray(reader.get_tensor(name)).tobytes())
    return digest.hexdigest(), len(reader.get_variable_to_shape_map())


def horovodrun(probe, dataset, tmp, epochs, per_rank, extra_env=None, extra_args=()):
    """Two CPU workers; per_rank holds the arguments that differ by rank ({rank} is replaced)."""
    args = ['horovodrun', '-np', str(WORLD), '-H', 'localhost:%d' % WORLD, '--gloo',
            sys.executable, str(probe), '--distributed=horovod', '--device=cpu',
            '--data_dir=%s' % dataset, '--train_list=%s' % (dataset / 'Sony_train_list.txt'),
            '--cache_dir=%s' % (tmp / 'cache'), '--epochs=%d' % epochs, '--ps=%d' % PS,
            '--save_freq=1', '--cache_workers=1'] + list(extra_args) + [' '.join(per_rank)]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', **(extra_env or {}))
    out = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, env=env, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout[-3000:]
    by_rank = {}
    for line in out.stdout.splitlines():
        m = LAUNCHER_LINE_RE.match(line)
        if m:
            by_rank.setdefault(int(m.group(1)), []).append(m.group(2))
    return by_rank


def digests(by_rank):
    found = {}
    for rank, lines in by_rank.items():
        for line in lines:
            m = DIGEST_RE.match(line)
            if m:
                assert int(m.group(1)) == rank
                found[rank] = (m.group(3), int(m.group(2)))
    assert sorted(found) == list(range(WORLD)), by_rank
    return found


@needs_horovod
def test_horovod_two_workers_train_identically_and_only_rank0_writes(tiny_dataset, tmp_path):
    probe = tmp_path / 'probe.py'
    probe.write_text(PROBE)
    # Phase 1: a fresh run, different seeds and separate output folders per rank.
    by_rank = horovodrun(probe, tiny_dataset, tmp_path, 2, [
        '--seed=1{rank}', '--checkpoint_dir=%s/ckpt{rank}' % tmp_path,
        '--result_dir=%s/result{rank}' % tmp_path])
    found = digests(by_rank)
    assert found[0] == found[1]
    assert found[0][0] == checkpoint_digest(str(tmp_path / 'ckpt0'))[0]

    # 3 scenes over 2 ranks: 2 steps per epoch; only rank 0 logs them.
    steps = [STEP_LOG_RE.match(line).groups()[:2] for line in by_rank[0] if STEP_LOG_RE.match(line)]
    assert steps == [('1', '1'), ('1', '2'), ('2', '1'), ('2', '2')]
    assert not [line for line in by_rank.get(1, []) if STEP_LOG_RE.match(line)]
    assert tf.train.latest_checkpoint(str(tmp_path / 'ckpt0')).endswith('model.ckpt-4')
    assert int(tf.train.load_variable(str(tmp_path / 'ckpt0'), 'epoch')) == 2
    assert not (tmp_path / 'ckpt1').exists() or not os.listdir(str(tmp_path / 'ckpt1'))
    assert not (tmp_path / 'result1').exists() or not os.listdir(str(tmp_path / 'result1'))
    # Rank 0's samples show only its own shard (scenes 1 and 3 of the sorted ids 1, 2, 3).
    samples = [name for epoch in ('0001', '0002')
               for name in os.listdir(str(tmp_path / 'result0' / epoch))]
    assert samples and set(int(name[:5]) for name in samples) <= {1, 3}
    assert len([n for n in os.listdir(str(tmp_path / 'result0')) if 'tfevents' in n]) == 1

    # Phase 2: resume from rank 0's checkpoint for one more epoch, as a restarted job would.
    by_rank = horovodrun(probe, tiny_dataset, tmp_path, 3, [
        '--seed=1{rank}', '--checkpoint_dir=%s/ckpt0' % tmp_path,
        '--result_dir=%s/result{rank}' % tmp_path])
    found = digests(by_rank)
    assert found[0] == found[1]
    assert [line for line in by_rank[0] if line.startswith('resumed from')]
    steps = [STEP_LOG_RE.match(line).groups()[:2] for line in by_rank[0] if STEP_LOG_RE.match(line)]
    assert steps == [('3', '1'), ('3', '2')]
    latest = tf.train.latest_checkpoint(str(tmp_path / 'ckpt0'))
    assert latest.endswith('model.ckpt-6')
    assert found[0][0] == checkpoint_digest(latest)[0]


# Each rank's validated pairs and their scores, printed by the rank that scored them.
LOGGED_VALIDATION = r'''
import os
import validation
_validate = validation.validate


def logged_validate(*args):
    scores = _validate(*args)
    for i, (psnr, ssim) in sorted(scores.items()):
        print('VALIDATED rank=%s pair=%d psnr=%.6f ssim=%.6f'
              % (os.environ['HOROVOD_RANK'], i, psnr, ssim))
    return scores


validation.validate = logged_validate
'''
VALIDATED_RE = re.compile(r'^VALIDATED rank=(\d+) pair=(\d+) psnr=(\S+) ssim=(\S+)$')


@pytest.fixture(scope='module')
def two_val_scenes(tmp_path_factory):
    """A tiny dataset whose validation list has two burst _00 pairs: one for each rank."""
    from conftest import make_tiny_dataset
    root = tmp_path_factory.mktemp('sid_val2')
    make_tiny_dataset(root, n_val=2)
    return root


@needs_horovod
def test_horovod_ranks_validate_their_share_and_rank0_logs_the_mean(two_val_scenes, tmp_path):
    """Validation is shared: each rank scores its pairs, one all-reduce gives every rank all the
    scores, so no rank waits inside a collective for another's whole validation; rank 0 logs the
    mean and keeps the best checkpoint, rank 1 writes nothing."""
    probe = tmp_path / 'probe.py'
    probe.write_text(LOGGED_VALIDATION + PROBE)
    by_rank = horovodrun(
        probe, two_val_scenes, tmp_path, 2,
        ['--seed=1{rank}', '--checkpoint_dir=%s/ckpt{rank}' % tmp_path,
         '--result_dir=%s/result{rank}' % tmp_path],
        extra_args=['--val_list=%s' % (two_val_scenes / 'Sony_val_list.txt'), '--val_every=1'])
    found = digests(by_rank)
    assert found[0] == found[1]  # the ranks stayed in step through both validations
    scored = {}  # (epoch index, pair) -> (rank, psnr, ssim), in the order each rank printed
    for rank, lines in by_rank.items():
        seen = 0
        for line in lines:
            m = VALIDATED_RE.match(line)
            if m:
                assert int(m.group(1)) == rank
                scored[(seen, int(m.group(2)))] = (rank, float(m.group(3)), float(m.group(4)))
                seen += 1
    assert sorted(scored) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(scored[(k, pair)][0] == pair for k, pair in scored)  # pair i on rank i
    val = [VAL_LOG_RE.match(line).groups() for line in by_rank[0] if VAL_LOG_RE.match(line)]
    assert [(g[0], g[1]) for g in val] == [('1', '2'), ('2', '2')]
    for k, groups in enumerate(val):
        assert float(groups[2]) == pytest.approx(
            np.mean([scored[(k, pair)][1] for pair in (0, 1)]), abs=1e-4)
        assert float(groups[3]) == pytest.approx(
            np.mean([scored[(k, pair)][2] for pair in (0, 1)]), abs=1e-4)
    assert not [line for line in by_rank.get(1, []) if VAL_LOG_RE.match(line)]
    assert (tmp_path / 'ckpt0' / 'best' / 'best.json').exists()
    assert not (tmp_path / 'ckpt1').exists() or not os.listdir(str(tmp_path / 'ckpt1'))
    assert not (tmp_path / 'result1').exists() or not os.listdir(str(tmp_path / 'result1'))


def two_device_table(tmp_path):
    with open(RANK_TABLE) as f:
        table = json.load(f)
    table['server_list'][0]['device'] = table['server_list'][0]['device'][:WORLD]
    path = tmp_path / 'rank_table_2p.json'
    path.write_text(json.dumps(table))
    return str(path)


def test_hccl_ranks_through_the_npu_bridge_test_double(tiny_dataset, tmp_path):
    """train_Sony.py --distributed=hccl as train_full_8p.sh starts it, one process per device.

    The double's collectives do not connect processes, so each rank is checked for its role:
    the Ascend runtime line, rank/size from the rank table, the loss-scaled optimizer's state in
    the checkpoint, and nothing written or logged by rank 1.
    """
    table = two_device_table(tmp_path)
    procs = []
    for rank in range(WORLD):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, FAKES]),
                   TF_CPP_MIN_LOG_LEVEL='2', RANK_TABLE_FILE=table, RANK_ID=str(rank),
                   RANK_SIZE=str(WORLD), ASCEND_DEVICE_ID=str(rank), DEVICE_ID=str(rank),
                   JOB_ID='10087')
        args = [sys.executable, os.path.join(ROOT, 'train_Sony.py'), '--distributed=hccl',
                '--data_dir=%s' % tiny_dataset,
                '--train_list=%s' % (tiny_dataset / 'Sony_train_list.txt'),
                '--cache_dir=%s' % (tmp_path / 'cache'), '--epochs=1', '--ps=%d' % PS,
                '--cache_workers=1', '--checkpoint_dir=%s' % (tmp_path / ('ckpt%d' % rank)),
                '--result_dir=%s' % (tmp_path / ('result%d' % rank))]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      universal_newlines=True, env=env))
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    rank0, rank1 = outs[0][0].splitlines(), outs[1][0].splitlines()
    assert rank0[0] == ('device=npu precision=mixed (Ascend precision_mode=allow_mix_precision, '
                        'dynamic loss scale from 2^32), rank 0 of 2')
    assert [line for line in rank0 if STEP_LOG_RE.match(line)]
    assert not [line for line in rank1 if STEP_LOG_RE.match(line)]
    ckpt = str(tmp_path / 'ckpt0')
    assert tf.train.latest_checkpoint(ckpt).endswith('model.ckpt-2')
    assert tf.train.load_variable(ckpt, 'loss_scale') == 2.0 ** 32  # the real adapter's name
    assert not (tmp_path / 'ckpt1').exists() or not os.listdir(str(tmp_path / 'ckpt1'))
    assert not (tmp_path / 'result1').exists() or not os.listdir(str(tmp_path / 'result1'))


@pytest.mark.parametrize('rank, size, job, message', [
    ('5', '2', '1', 'RANK_ID=5 is not in '),
    ('1', '8', '1', 'RANK_SIZE=8 but '),
    ('1', '2', '', 'JOB_ID is not set'),
])
def test_hccl_bad_environment_stops_before_training(tiny_dataset, tmp_path, rank, size, job,
                                                    message):
    """One line before any work, never HCCL's own failure later (or the adapter's AttributeError
    deep in graph building for a missing JOB_ID)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, FAKES]), TF_CPP_MIN_LOG_LEVEL='2',
               RANK_TABLE_FILE=two_device_table(tmp_path), RANK_ID=rank, RANK_SIZE=size,
               ASCEND_DEVICE_ID=rank, JOB_ID=job)
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'train_Sony.py'), '--distributed=hccl',
                          '--data_dir=%s' % tiny_dataset, '--checkpoint_dir=%s' % (tmp_path / 'c')],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         env=env, timeout=TIMEOUT)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and message in errors[0], out.stderr[-2000:]
    assert 'Traceback' not in out.stderr
    assert not (tmp_path / 'c').exists()


AMP_PROBE = r'''
import tensorflow.compat.v1 as tf
import npu_config
tf.disable_v2_behavior()
dist = npu_config.Distribution('horovod')
rt = npu_config.Runtime('gpu', 'mixed', None)
w = tf.get_variable('w', initializer=tf.constant([1.0, -2.0]))
opt = npu_config.wrap_optimizer(tf.train.AdamOptimizer(0.1), rt, dist)
train = opt.minimize(tf.reduce_sum(tf.square(w)))
with tf.Session(config=npu_config.session_config(npu_config.Runtime('cpu', 'fp32', None))) as sess:
    sess.run(tf.global_variables_initializer())
    sess.run(dist.broadcast_op())
    sess.run(train)
    values = [round(float(x), 4) for x in sess.run(w)]
    print(type(opt).__name__, type(opt._optimizer).__name__, values)
'''


@needs_horovod
def test_horovod_inside_gpu_loss_scaling_trains():
    """GPU mixed precision over Horovod: the averaging optimizer inside the dynamic loss scaling.

    On a CPU the graph rewrite finds no GPU and leaves float32, but the loss scaling, Horovod's
    allreduce and Adam all run.
    """
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
    out = subprocess.run([sys.executable, '-c', AMP_PROBE], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split('\n')[-2] == ('MixedPrecisionLossScaleOptimizer _DistributedOptimizer '
                                          '[0.9, -1.9]')
