"""Training loss and validation PSNR against epoch, from a train_Sony.py log: one PNG.

The log is read with train_Sony.py's own regexes (EPOCH_LOG_RE: each epoch's mean L1 loss;
VAL_LOG_RE: each validation's PSNR), rank 0's lines only when horovodrun prefixed them. A log
that several runs appended to is read in order, and a run that starts again at epoch E (a resume
redoes the interrupted epoch, a fresh run starts at 1) replaces what the log held from E on, so
the plot shows the history of the checkpoints the run continues from.

    python3 train_Sony.py --val_every=100 --log_file=result_Sony/train_log.txt
    python3 scripts/plot_training.py --log=result_Sony/train_log.txt --out=result_Sony/training.png
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'scripts', 'modelzoo'))  # parse_log
import cli
import safe_files

FIGURE_INCHES = (8, 6)
DPI = 100  # 800 x 600 pixels


def define_flags():
    from absl import flags
    flags.DEFINE_string('log', './result_Sony/train_log.txt', 'train_Sony.py output saved to a '
                        'file (e.g. with tee -a)')
    flags.DEFINE_string('out', './result_Sony/training.png', 'the PNG to write')


def read_history(lines):
    """({epoch: mean training loss}, {epoch: validation PSNR}) as the last run left them."""
    from train_Sony import EPOCH_LOG_RE, VAL_LOG_RE
    loss, psnr = {}, {}
    for line in lines:
        m = EPOCH_LOG_RE.match(line)
        if m:
            epoch = int(m.group(1))
            for series in (loss, psnr):  # a run that starts again at `epoch` redoes the rest
                for stale in [e for e in series if e >= epoch]:
                    del series[stale]
            loss[epoch] = float(m.group(3))
            continue
        m = VAL_LOG_RE.match(line)
        if m:
            psnr[int(m.group(1))] = float(m.group(3))
    return loss, psnr


def plot(loss, psnr, path, title):
    """Loss (log scale) above, validation PSNR below, on one epoch axis; written atomically."""
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=FIGURE_INCHES)
    epochs = sorted(loss)
    top.plot(epochs, [loss[e] for e in epochs], color='tab:blue')
    top.set_yscale('log')
    top.set_ylabel('training loss (epoch mean L1)')
    top.set_title(title)
    top.grid(True, which='both', alpha=0.3)
    if psnr:
        val = sorted(psnr)
        best = max(val, key=lambda e: (psnr[e], -e))  # the first epoch with the top score
        bottom.plot(val, [psnr[e] for e in val], marker='o', color='tab:green')
        bottom.plot([best], [psnr[best]], '*', color='tab:red', markersize=14,
                    label='best %.2f dB (epoch %d)' % (psnr[best], best))
        bottom.legend(loc='lower right')
    else:
        bottom.text(0.5, 0.5, 'no validation in this log (train_Sony.py --val_list)',
                    ha='center', va='center', transform=bottom.transAxes)
    bottom.set_ylabel('validation PSNR (dB)')
    bottom.set_xlabel('epoch')
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    with safe_files.atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=DPI)
    plt.close(fig)


@cli.fail_cleanly
def main(argv):
    del argv
    from absl import flags
    import parse_log
    f = flags.FLAGS
    try:
        lines = parse_log.chief_lines(f.log)
    except parse_log.LogError as e:
        raise cli.SidError(str(e))
    loss, psnr = read_history(lines)
    if not loss:
        raise cli.SidError('%s: no "Epoch <n> done: ..." lines of train_Sony.py; is it a '
                           'training log?' % f.log)
    plot(loss, psnr, f.out, os.path.basename(f.log))
    print('%s: %d epochs, %d validations' % (f.out, len(loss), len(psnr)))


if __name__ == '__main__':
    cli.run(main, define_flags)
