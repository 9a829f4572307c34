"""scripts/plot_training.py: training loss and validation PSNR against epoch from a training log."""
import os

from PIL import Image

import plot_training
import train_Sony
from conftest import run_script


def epoch_line(epoch, loss):
    return train_Sony.EPOCH_LOG % (epoch, 3, loss, 1.0, 0.01, 1e-4,
                                   'ckpt/model.ckpt-%d' % (3 * epoch))


def val_line(epoch, psnr):
    return train_Sony.VAL_LOG % (epoch, 2, psnr, 0.5, psnr, epoch, 3.0)


def test_a_restarted_run_replaces_what_it_redoes():
    lines = [epoch_line(1, 0.5), val_line(1, 10.0), epoch_line(2, 0.4), val_line(2, 11.0),
             epoch_line(3, 0.3), val_line(3, 12.0),
             'resumed from ckpt/model.ckpt-6: epoch 2 done, starting epoch 3',
             train_Sony.STEP_LOG % (3, 1, 0.35, 0.1), epoch_line(3, 0.35), epoch_line(4, 0.2),
             val_line(4, 13.0)]
    loss, psnr = plot_training.read_history(lines)
    assert loss == {1: 0.5, 2: 0.4, 3: 0.35, 4: 0.2}
    assert psnr == {1: 10.0, 2: 11.0, 4: 13.0}  # epoch 3's validation was of the lost epoch 3
    # A fresh run in the same log starts the history again.
    loss, psnr = plot_training.read_history(lines + [epoch_line(1, 0.6)])
    assert (loss, psnr) == ({1: 0.6}, {})


def test_writes_a_png_from_a_horovod_log(tmp_path):
    log = tmp_path / 'train_log.txt'
    lines = ['device=cpu precision=fp32 (float32), rank 0 of 2']
    for epoch in range(1, 7):
        lines.append(epoch_line(epoch, 0.5 / epoch))
        if epoch % 2 == 0:
            lines.append(val_line(epoch, 20.0 + epoch))
    lines = ['[0]<stdout>:' + l for l in lines] + ['[1]<stdout>:' + epoch_line(9, 0.1)]
    log.write_text(u'\n'.join(lines) + u'\n')
    out = tmp_path / 'plots' / 'training.png'
    proc = run_script('scripts/plot_training.py', '--log=%s' % log, '--out=%s' % out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == '%s: 6 epochs, 3 validations' % out  # rank 1 dropped
    with Image.open(str(out)) as im:
        assert (im.format, im.size) == ('PNG', (800, 600))
    assert os.listdir(str(out.parent)) == ['training.png']  # no temporaries left


def test_a_log_without_epochs_is_a_one_line_error(tmp_path):
    log = tmp_path / 'eval.log'
    log.write_text(u'average psnr: 28.1\n')
    out = tmp_path / 'training.png'
    for path, message in ((log, '%s: no "Epoch <n> done: ..." lines of train_Sony.py' % log),
                          (tmp_path / 'missing.txt', '%s: cannot read log' % (tmp_path /
                                                                              'missing.txt'))):
        proc = run_script('scripts/plot_training.py', '--log=%s' % path, '--out=%s' % out)
        assert proc.returncode == 1
        errors = [l for l in proc.stderr.splitlines() if l.startswith('error: ')]
        assert len(errors) == 1 and errors[0].startswith('error: ' + message), proc.stderr
        assert 'Traceback' not in proc.stderr and not out.exists()
