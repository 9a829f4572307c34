"""The ModelZoo launchers in scripts/, run for real on a tiny generated dataset, and their parser.

Every launcher must end with the ModelZoo `key = value` summary whose measured values are numbers
that agree with the logs they came from (parsed with train_Sony.py's own regexes).
"""
import json
import os
import re
import subprocess
import sys

import pytest

import parse_log
import train_Sony
from conftest import ROOT, needs_horovod

FAKES = os.path.join(ROOT, 'tests', 'fakes')
RANK_TABLE = os.path.join(ROOT, 'scripts', 'modelzoo', 'rank_table_8p.json')
TEXT_KEYS = ('Network', 'DeviceType', 'CaseName')
NUMBER_KEYS = ('RankSize', 'BatchSize', 'ActualFPS', 'TrainingTime', 'ActualLoss',
               'E2ETrainingTime')
FULL_KEYS = TEXT_KEYS[:1] + ('RankSize', 'BatchSize') + TEXT_KEYS[1:] + (
    'ActualFPS', 'TrainingTime', 'ActualLoss', 'TrainAccuracy', 'E2ETrainingTime')
TINY = ['--train_epochs=2', '--ps=32', '--warmup_steps=2']
TIMEOUT = 300


def run(script, *args, **env):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    full_env.update(env)
    return subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'modelzoo', script)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=full_env, timeout=TIMEOUT)


def summary_of(out):
    """The `key = value` lines of a launcher's stdout, in order."""
    assert out.returncode == 0, out.stderr[-3000:]
    pairs = [line.split(' = ', 1) for line in out.stdout.splitlines() if ' = ' in line]
    return dict(pairs), [k for k, _ in pairs]


def common_args(dataset, tmp_path):
    return ['--data_path=%s' % dataset, '--output_path=%s' % (tmp_path / 'output'),
            '--cache_path=%s' % (tmp_path / 'cache')] + TINY


def step_times_and_loss(log):
    times, losses = [], []
    for line in parse_log.chief_lines(str(log)):
        m = train_Sony.STEP_LOG_RE.match(line)
        if m:
            losses.append(float(m.group(3)))
            times.append(float(m.group(4)))
    return times, losses


def check_numbers(values, keys):
    for key in keys:
        float(values[key])  # raises on anything that is not a number
    for key in TEXT_KEYS:
        assert values[key]


def check_against_log(values, log, rank_size, warmup=2):
    """ActualFPS/TrainingTime from the mean Time= after warm-up, ActualLoss the last Loss=."""
    times, losses = step_times_and_loss(log)
    step = sum(times[warmup:]) / len(times[warmup:])
    assert float(values['TrainingTime']) == pytest.approx(step * 1000, abs=0.01)
    assert float(values['ActualFPS']) == pytest.approx(rank_size / step, rel=1e-3)
    assert float(values['ActualLoss']) == pytest.approx(losses[-1], abs=1e-6)


# ---------------------------------------------------------------- the parser

def test_parser_reads_what_training_prints(tmp_path):
    """Lines made with train_Sony.py's own format strings, with a Horovod prefix and other ranks."""
    lines = ['device=cpu precision=fp32 (float32), rank 0 of 2',
             train_Sony.STEP_LOG % (1, 1, 0.5, 2.0), train_Sony.STEP_LOG % (1, 2, 0.4, 0.2),
             train_Sony.EPOCH_LOG % (1, 2, 0.4, 2.2, 0.0, 1e-4, 'ckpt/model.ckpt-2'),
             train_Sony.STEP_LOG % (2, 1, 0.3, 0.1), train_Sony.STEP_LOG % (2, 2, 0.25, 0.3),
             train_Sony.EPOCH_LOG % (2, 2, 0.25, 0.4, 0.0, 1e-4, 'ckpt/model.ckpt-4')]
    log = tmp_path / 'train.log'
    log.write_text(''.join('[0]<stdout>:%s\n' % line for line in lines)
                   + '[1]<stdout>:%s\n' % train_Sony.STEP_LOG % (1, 1, 9.0, 99.0)
                   + '[1]<stderr>:some warning\n')
    times, loss = parse_log.parse_training(parse_log.chief_lines(str(log)))
    assert times == [2.0, 0.2, 0.1, 0.3] and loss == 0.25
    values = parse_log.summary(times, loss, rank_size=2, batch_size=4, case_name='c',
                               device_type='x86_64', e2e_time=12.6, warmup=1, psnr=28.5)
    assert list(values) == list(FULL_KEYS)
    assert values['TrainingTime'] == '200.00'      # mean of 0.2, 0.1, 0.3 s
    assert values['ActualFPS'] == '40.0000'        # 4 images x 2 ranks / 0.2 s
    assert (values['ActualLoss'], values['TrainAccuracy'], values['E2ETrainingTime']) == (
        '0.250000', '28.5000', '13')


def test_parser_rejects_logs_without_the_lines(tmp_path):
    log = tmp_path / 'train.log'
    log.write_text('1 1 Loss= 0.5 Time= 0.1\n')  # the old port's format: not this training's
    eval_log = tmp_path / 'eval.log'
    eval_log.write_text('average psnr: 28.1\n')
    assert parse_log.main(['--train_log=%s' % log, '--case_name=c', '--e2e_time=1']) == 1
    with pytest.raises(parse_log.LogError, match='average ssim'):
        parse_log.parse_eval(parse_log.chief_lines(str(eval_log)), str(eval_log))
    with pytest.raises(parse_log.LogError, match='cannot read'):
        parse_log.chief_lines(str(tmp_path / 'missing.log'))


def test_parser_warmup_never_leaves_nothing():
    assert parse_log.mean_step_time([5.0, 1.0, 3.0], 10) == 2.0  # only the first step dropped
    assert parse_log.mean_step_time([5.0, 1.0, 3.0], 0) == 3.0
    assert parse_log.mean_step_time([5.0], 3) == 5.0


# ---------------------------------------------------------------- the launchers

@pytest.mark.parametrize('script', ['train_full_1p.sh', 'train_performance_1p.sh',
                                    'train_full_8p.sh', 'train_horovod.sh'])
def test_launchers_need_a_dataset(script, tmp_path):
    out = run(script, '--output_path=%s' % tmp_path)
    assert out.returncode == 2 and '--data_path must be the dataset root' in out.stderr
    out = run(script, '--data_path=%s' % tmp_path, '--bogus=1')
    assert out.returncode == 2 and 'unknown option --bogus=1' in out.stderr
    out = run(script, '--data_path=%s' % tmp_path, '--camera=canon')
    assert out.returncode == 2 and "--camera must be sony or fuji (got 'canon')" in out.stderr


def test_train_performance_1p(tiny_dataset, tmp_path):
    values, keys = summary_of(run('train_performance_1p.sh', *common_args(tiny_dataset, tmp_path)))
    assert keys == [k for k in FULL_KEYS if k != 'TrainAccuracy']
    check_numbers(values, NUMBER_KEYS)
    assert (values['RankSize'], values['BatchSize'], values['CaseName']) == (
        '1', '1', 'SID_Sony_bs1_1p_perf')
    device_dir = tmp_path / 'output' / '0'
    check_against_log(values, device_dir / 'train_0.log', 1)
    assert (device_dir / 'SID_Sony_bs1_1p_perf.log').read_text() == ''.join(
        '%s = %s\n' % (k, values[k]) for k in keys)
    # The measurement trained from scratch in a scratch folder and removed it.
    assert not [n for n in os.listdir(str(tmp_path / 'output')) if n.startswith('perf_checkpoint')]


def test_train_full_1p(tiny_dataset, tmp_path):
    values, keys = summary_of(run('train_full_1p.sh', *common_args(tiny_dataset, tmp_path)))
    assert keys == list(FULL_KEYS)
    check_numbers(values, NUMBER_KEYS + ('TrainAccuracy',))
    assert values['CaseName'] == 'SID_Sony_bs1_1p_acc'
    device_dir = tmp_path / 'output' / '0'
    check_against_log(values, device_dir / 'train_0.log', 1)
    psnr = parse_log.parse_eval(parse_log.chief_lines(str(device_dir / 'eval.log')))[0]
    assert float(values['TrainAccuracy']) == pytest.approx(psnr, abs=1e-4)
    final = os.listdir(str(tmp_path / 'output' / 'result' / 'final'))
    assert len([n for n in final if n.endswith('_out.png')]) == 2  # the two test scenes' _00


def test_train_full_1p_fuji(tiny_fuji_dataset, tiny_dataset, tmp_path):
    out = run('train_full_1p.sh', '--camera=fuji', '--data_path=%s' % tiny_dataset)
    assert out.returncode == 2 and 'the dataset root holding Fuji/' in out.stderr
    values, keys = summary_of(run('train_full_1p.sh', '--camera=fuji',
                                  *common_args(tiny_fuji_dataset, tmp_path)))
    assert keys == list(FULL_KEYS) and values['CaseName'] == 'SID_Fuji_bs1_1p_acc'
    check_numbers(values, NUMBER_KEYS + ('TrainAccuracy',))
    device_dir = tmp_path / 'output' / '0'
    check_against_log(values, device_dir / 'train_0.log', 1)
    assert 'Fuji checkpoint' in (device_dir / 'test.log').read_text()
    final = tmp_path / 'output' / 'result' / 'final'
    assert sorted(p.name for p in final.glob('*_out.png')) == ['10001_00_300_out.png']


@needs_horovod
def test_train_horovod_two_cpu_workers(tiny_dataset, tmp_path):
    values, keys = summary_of(run('train_horovod.sh', '--np=2', '--mode=performance',
                                  *common_args(tiny_dataset, tmp_path)))
    check_numbers(values, NUMBER_KEYS)
    assert (values['RankSize'], values['CaseName']) == ('2', 'SID_Sony_bs1_2p_horovod_perf')
    check_against_log(values, tmp_path / 'output' / '0' / 'train_0.log', 2)


def two_device_table(tmp_path, rank_ids=('0', '1')):
    with open(RANK_TABLE) as f:
        table = json.load(f)
    devices = table['server_list'][0]['device'][:len(rank_ids)]
    for device, rank in zip(devices, rank_ids):
        device['rank_id'] = device['device_id'] = rank
    table['server_list'][0]['device'] = devices
    path = tmp_path / 'rank_table.json'
    path.write_text(json.dumps(table))
    return str(path)


# A PYTHON for the launchers that notes each script's rank environment, then runs it.
ENV_NOTING_PYTHON = '''#!/usr/bin/env bash
echo "$(basename "$1") RANK_SIZE=${RANK_SIZE-} RANK_ID=${RANK_ID-} \\
RANK_TABLE_FILE=${RANK_TABLE_FILE-} ASCEND_DEVICE_ID=${ASCEND_DEVICE_ID-}" >> "%s"
exec "%s" "$@"
'''


def test_train_full_8p_launcher_with_the_test_double(tiny_dataset, tmp_path):
    """The HCCL launcher end to end on CPU: a 2-device rank table, npu_bridge from tests/fakes.
    Test and eval run after training in a one-device environment (an 8p run's RANK_SIZE and
    RANK_TABLE_FILE would make GE set up HCCL for ranks that are gone)."""
    noted = tmp_path / 'environments.txt'
    python = tmp_path / 'python'
    python.write_text(ENV_NOTING_PYTHON % (noted, sys.executable))
    python.chmod(0o755)
    table = two_device_table(tmp_path)
    out = run('train_full_8p.sh', '--rank_table=%s' % table,
              *common_args(tiny_dataset, tmp_path), PYTHONPATH=FAKES, PYTHON=str(python))
    environments = sorted(line for line in noted.read_text().splitlines()
                          if line.split()[0] in ('train_Sony.py', 'test_Sony.py', 'eval.py'))
    assert environments == [
        'eval.py RANK_SIZE=1 RANK_ID=0 RANK_TABLE_FILE= ASCEND_DEVICE_ID=0',
        'test_Sony.py RANK_SIZE=1 RANK_ID=0 RANK_TABLE_FILE= ASCEND_DEVICE_ID=0',
        'train_Sony.py RANK_SIZE=2 RANK_ID=0 RANK_TABLE_FILE=%s ASCEND_DEVICE_ID=0' % table,
        'train_Sony.py RANK_SIZE=2 RANK_ID=1 RANK_TABLE_FILE=%s ASCEND_DEVICE_ID=1' % table]
    values, keys = summary_of(out)
    assert keys == list(FULL_KEYS)
    check_numbers(values, NUMBER_KEYS + ('TrainAccuracy',))
    assert (values['RankSize'], values['CaseName']) == ('2', 'SID_Sony_bs1_2p_acc')
    output = tmp_path / 'output'
    check_against_log(values, output / '0' / 'train_0.log', 2)
    assert 'device=npu precision=mixed' in (output / '0' / 'train_0.log').read_text()
    assert not step_times_and_loss(output / '1' / 'train_1.log')[0]  # rank 1 logs no steps
    assert sorted(os.listdir(str(output / '1'))) == ['train_1.log']


def test_train_full_8p_stops_every_rank_when_one_fails(tiny_dataset, tmp_path):
    """Rank 7 of this table has no scenes and exits; rank 0 would wait for it in HCCL forever."""
    out = run('train_full_8p.sh', '--rank_table=%s' % two_device_table(tmp_path, ('0', '7')),
              *(common_args(tiny_dataset, tmp_path) + ['--train_epochs=1000']), PYTHONPATH=FAKES)
    assert out.returncode == 1
    assert 'rank 7 (device 7) failed' in out.stderr
    assert 'scenes cannot feed 2 ranks' in out.stderr
    pid = int(re.search(r'rank 0 on device 0: pid (\d+)', out.stderr).group(1))
    with pytest.raises(OSError):
        os.kill(pid, 0)
    assert 'Epoch 1000 done' not in (tmp_path / 'output' / '0' / 'train_0.log').read_text()


@needs_horovod
def test_install_horovod_is_idempotent():
    out = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'install_horovod.sh')],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'already imports (0.28.1); nothing to do' in out.stdout


def test_modelzoo_must_keep_origin_dtype_is_refused(tiny_dataset, tmp_path):
    """The 910 computes Conv2D in float16 only: must_keep_origin_dtype cannot compile the U-Net."""
    out = run('train_full_1p.sh', '--precision_mode=must_keep_origin_dtype',
              *common_args(tiny_dataset, tmp_path))
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        'train_full_1p.sh: --precision_mode=must_keep_origin_dtype cannot compile this U-Net on '
        'Ascend 910 (its cube unit has Conv2D in float16 only); --precision=fp32 runs '
        'allow_fp32_to_fp16']


def test_modelzoo_precision_mode_means_mixed_precision(tiny_dataset, tmp_path):
    """ModelZoo's --precision_mode=allow_mix_precision means mixed precision, which a CPU lacks."""
    out = run('train_performance_1p.sh', '--precision_mode=allow_mix_precision', '--device=cpu',
              *common_args(tiny_dataset, tmp_path))
    assert out.returncode == 1
    assert 'error: --precision=mixed needs an Ascend NPU or a GPU' in out.stderr
