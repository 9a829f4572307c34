"""Turn training and eval logs into the ModelZoo summary (`key = value` lines).

The ModelZoo shell scripts used to grep their own idea of the log format (the port grepped
"Loss= " while its training printed "Loss="), so a format change silently broke the summary. Here
the training lines are parsed with the regexes train_Sony.py prints with (STEP_LOG_RE,
EPOCH_LOG_RE) and a missing line is an error, not an empty value.

Keys (ModelZoo conventions):
  ActualFPS       images/s of the whole world: batch * rank size / mean step time after warm-up
  TrainingTime    that mean step time in milliseconds
  ActualLoss      the last logged loss (running mean L1 of the last epoch)
  TrainAccuracy   eval.py's average PSNR in dB (only with --eval_log)
  E2ETrainingTime end-to-end seconds of the launcher, measured by the shell script

    python3 scripts/modelzoo/parse_log.py --train_log=output/0/train_0.log \
        --eval_log=output/0/eval.log \
        --rank_size=1 --batch_size=1 --case_name=SID_bs1_1p_acc --e2e_time=620
"""
import argparse
import os
import re
import sys
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from train_Sony import EPOCH_LOG_RE, STEP_LOG_RE  # noqa: E402  (the format the training prints)
# eval.py's closing lines
from eval import PSNR_LOG_RE as PSNR_RE, SSIM_LOG_RE as SSIM_RE  # noqa: E402

NETWORK = 'SID_Sony'
DEFAULT_WARMUP_STEPS = 5   # first steps include graph compilation and cache warm-up
# horovodrun prefixes every line with the rank and stream: "[0]<stdout>:1 1 Loss=..."
LAUNCHER_PREFIX_RE = re.compile(r'^\[(\d+)\]<(stdout|stderr)>:')
CHIEF = '0'


class LogError(Exception):
    """A log without the lines the summary needs: one line naming the log."""


def chief_lines(path):
    """The log's lines as rank 0 printed them (launcher prefixes removed, other ranks dropped)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise LogError('%s: cannot read log (%s)' % (path, e.strerror or e))
    lines = []
    for line in text.splitlines():
        m = LAUNCHER_PREFIX_RE.match(line)
        if m and m.group(1) != CHIEF:
            continue
        lines.append(line[m.end():] if m else line)
    return lines


def parse_training(lines, path='log'):
    """(step times [s], last loss) from the STEP_LOG lines; the last EPOCH_LOG mean wins if any."""
    times, loss = [], None
    for line in lines:
        m = STEP_LOG_RE.match(line)
        if m:
            loss = float(m.group(3))
            times.append(float(m.group(4)))
            continue
        m = EPOCH_LOG_RE.match(line)
        if m:
            loss = float(m.group(3))
    if not times:
        raise LogError('%s: no training step lines ("<epoch> <step> Loss=<x> Time=<s>")' % path)
    return times, loss


def parse_eval(lines, path='log'):
    """(average psnr, average ssim) from eval.py's closing lines."""
    found = {}
    for line in lines:
        for key, regex in (('psnr', PSNR_RE), ('ssim', SSIM_RE)):
            m = regex.match(line)
            if m:
                found[key] = float(m.group(1))
    if set(found) != {'psnr', 'ssim'}:
        raise LogError('%s: no "average psnr:" / "average ssim:" lines from eval.py' % path)
    return found['psnr'], found['ssim']


def mean_step_time(times, warmup):
    """Mean step time without the first `warmup` steps.

    A run too short for that still drops its first step (graph compilation) if it has another.
    """
    skip = warmup if len(times) > warmup else min(1, len(times) - 1)
    if skip < warmup:
        sys.stderr.write('parse_log: only %d steps, averaging after %d warm-up step(s) instead of '
                         '%d\n' % (len(times), skip, warmup))
    kept = times[skip:]
    return sum(kept) / len(kept)


def summary(times, loss, rank_size, batch_size, case_name, device_type, e2e_time, warmup,
            psnr=None):
    step = mean_step_time(times, warmup)
    values = OrderedDict([
        ('Network', NETWORK), ('RankSize', rank_size), ('BatchSize', batch_size),
        ('DeviceType', device_type), ('CaseName', case_name),
        ('ActualFPS', '%.4f' % (batch_size * rank_size / step)),
        ('TrainingTime', '%.2f' % (step * 1000.0)),
        ('ActualLoss', '%.6f' % loss),
    ])
    if psnr is not None:
        values['TrainAccuracy'] = '%.4f' % psnr
    values['E2ETrainingTime'] = '%d' % round(e2e_time)
    return values


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--train_log', required=True)
    p.add_argument('--eval_log', help='eval.py output; adds TrainAccuracy (PSNR)')
    p.add_argument('--rank_size', type=int, default=1)
    p.add_argument('--batch_size', type=int, default=1, help='per rank')
    p.add_argument('--case_name', required=True)
    p.add_argument('--device_type', default=os.uname()[4])
    p.add_argument('--e2e_time', type=float, required=True, help='seconds, from the launcher')
    p.add_argument('--warmup_steps', type=int, default=DEFAULT_WARMUP_STEPS)
    p.add_argument('--output', help='also write the summary to this file')
    args = p.parse_args(argv)
    try:
        times, loss = parse_training(chief_lines(args.train_log), args.train_log)
        psnr = parse_eval(chief_lines(args.eval_log), args.eval_log)[0] if args.eval_log else None
    except LogError as e:
        sys.stderr.write('error: %s\n' % e)
        return 1
    values = summary(times, loss, args.rank_size, args.batch_size, args.case_name,
                     args.device_type, args.e2e_time, args.warmup_steps, psnr)
    text = ''.join('%s = %s\n' % kv for kv in values.items())
    sys.stdout.write(text)
    if args.output:
        with open(args.output, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
