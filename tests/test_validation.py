"""validation: which pairs validate, their scores (what test_Sony.py + eval.py give), the best
checkpoint's rule, and best/ with its record as one unit under kill -9."""
import json
import os
import signal
import subprocess
import sys

import pytest
import tensorflow.compat.v1 as tf

import camera
import checkpoints
import cli
import network
import npu_config
import pipeline
import raw_cache
import raw_io
import sid_lists
import train_Sony
import validation
from conftest import ROOT


@pytest.fixture(scope='module')
def data(tiny_dataset):
    """The session's tiny dataset; read-only here (caches go to tmp_path)."""
    return tiny_dataset


def val_list(data):
    return os.path.join(str(data), 'Sony_val_list.txt')


def consistent_best(best_dir):
    """best.json, once it describes the checkpoint best/ holds."""
    record = json.load(open(str(best_dir / 'best.json')))
    assert record['checkpoint'] == os.path.basename(checkpoints.find(str(best_dir)))
    return record


class _Stop(object):
    def __init__(self, signum=None):
        self.signum = signum


def test_validation_pairs_default_explicit_and_off(data, tmp_path):
    said = []
    got = validation.validation_pairs(val_list(data), True, str(data), said.append)
    assert [os.path.basename(p.short)[:8] for p in got] == ['20001_00'] and not said
    assert validation.validation_pairs('', False, str(data), said.append) is None and not said
    # The default list whose files are absent (the authors' list over the tiny data): off, 1 line.
    official = os.path.join(ROOT, 'Sony_val_list.txt')
    assert validation.validation_pairs(official, False, str(data), said.append) is None
    assert len(said) == 1 and said[0].startswith(
        'validation off: %s: 56 files of its 36 burst _00 pairs are missing under %s'
        % (official, data))
    assert validation.validation_pairs(str(tmp_path / 'none.txt'), False, str(data),
                                       said.append) is None
    assert said[1].startswith('validation off: %s not found' % (tmp_path / 'none.txt'))
    # Named on the command line, the same list is an error naming its first missing file.
    with pytest.raises(cli.SidError) as e:
        validation.validation_pairs(official, True, str(data), said.append)
    assert str(e.value).startswith('%s:1: file not found: ' % official)
    lines = open(val_list(data)).read().splitlines()
    only_burst_1 = str(tmp_path / 'burst1.txt')
    sid_lists.write_list([l for l in lines if '_01_' in l.split()[0]], only_burst_1)
    with pytest.raises(cli.SidError) as e:
        validation.validation_pairs(only_burst_1, True, str(data), said.append)
    assert 'no pairs with burst index _00' in str(e.value) and len(said) == 2


def test_validate_scores_every_pair_and_stops_on_a_signal(data, tmp_path):
    import inference
    import metrics
    pairs = pipeline.training_pairs(sid_lists.read_list(val_list(data), str(data)), True)
    raws = [(p.short, 'input') for p in pairs] + [(p[1], 'gt') for p in pairs]
    entries = raw_cache.build_cache(raws, str(tmp_path / 'cache'), str(data), workers=1,
                                    progress=False)
    cached = pipeline.CachedPairs(pairs, entries)
    with tf.Graph().as_default():
        packed, output = inference.build_network()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            scores = validation.validate(sess, packed, output, cached, _Stop())
            assert list(scores) == [0]  # the one burst _00 pair, by index
            psnr, ssim = scores[0]
            # The official path: pack_raw + amplify, the network, 8-bit images as test_Sony writes.
            x = raw_io.amplify(raw_io.pack_raw(pairs[0].short), cached.ratios[0])
            out = inference.to_uint(sess.run(output, {packed: x[None]})[0])
            gt = inference.to_uint(raw_io.read_ground_truth(pairs[0][1]))
            assert (psnr, ssim) == (metrics.psnr(out, gt), metrics.ssim(out, gt, 'skimage'))
            assert validation.validate(sess, packed, output, cached, _Stop(15)) is None


def best_files(folder):
    return sorted(os.listdir(str(folder)))


def test_best_checkpoint_changes_only_when_the_psnr_improves_and_survives_a_restart(
        data, tmp_path, monkeypatch):
    """Scripted scores drive the rule; the weights are set to the epoch before each validation,
    so the best checkpoint's content tells which epoch it holds."""
    pairs = pipeline.training_pairs(sid_lists.read_list(val_list(data), str(data)), True)
    held = type('Held', (), {'pairs': pairs, 'profile': camera.SONY})()
    best_dir = tmp_path / 'ckpt' / 'best'
    scores = []
    monkeypatch.setattr(validation, 'validate', lambda *args: {0: scores.pop(0)})
    said = []

    def run(sequence, fresh_start, first_epoch):
        """Validate after each epoch of `sequence` ((psnr, ssim) each); the log lines
        train_Sony.py makes of the results, parsed back."""
        scores.extend(sequence)
        logged = []
        with tf.Graph().as_default():
            network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
            weights_saver = tf.train.Saver(network.model_variables())
            bias = [v for v in network.model_variables() if v.op.name == 'g_conv1_1/biases'][0]
            validator = validation.Validator(held, 'val.txt', str(best_dir), weights_saver,
                                             fresh_start, said.append,
                                             npu_config.Distribution('none'))
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                for epoch in range(first_epoch, first_epoch + len(sequence)):
                    sess.run(bias.assign(tf.fill(tf.shape(bias), float(epoch))))
                    result = validator(sess, epoch, 10 * epoch, _Stop())
                    line = train_Sony.VAL_LOG % ((epoch,) + tuple(result))
                    logged.append(train_Sony.VAL_LOG_RE.match(line).groups())
        return logged

    def best_epoch_held():
        prefix = checkpoints.find(str(best_dir))
        return int(tf.train.load_variable(prefix, 'g_conv1_1/biases')[0]), prefix

    logged = run([(20.0, 0.5), (19.0, 0.6), (21.0, 0.4), (21.0, 0.9), (18.0, 0.1)], True, 1)
    assert [(g[2], g[4], g[5]) for g in logged] == [
        ('20.0000', '20.0000', '1'), ('19.0000', '20.0000', '1'), ('21.0000', '21.0000', '3'),
        ('21.0000', '21.0000', '3'), ('18.0000', '21.0000', '3')]
    assert best_epoch_held() == (3, str(best_dir / 'model.ckpt-30'))
    assert best_files(best_dir) == ['best.json', 'checkpoint', 'model.ckpt-30.data-00000-of-00001',
                                    'model.ckpt-30.index']
    record = json.load(open(str(best_dir / 'best.json')))
    assert (record['epoch'], record['global_step'], record['psnr'], record['checkpoint'],
            record['ssim_protocol']) == (3, 30, 21.0, 'model.ckpt-30', 'skimage')
    assert record['ssim'] == pytest.approx(0.4, abs=1e-14)  # through float32 pairs (48 bits)
    assert record['pairs'] == [os.path.basename(pairs[0].short)]
    assert not [n for n in os.listdir(str(best_dir.parent)) if n != 'best']  # nothing else

    # A restart reads the best score back (and clears a killed save's leftovers in best/).
    (best_dir / '.tmp-killed').write_bytes(b'x')
    del said[:]
    logged = run([(20.5, 0.9), (22.0, 0.8)], False, 6)
    assert said[0] == 'removed 1 leftovers of an interrupted save from %s (.tmp-killed)' % best_dir
    assert [(g[0], g[4], g[5]) for g in logged] == [('6', '21.0000', '3'), ('7', '22.0000', '7')]
    assert best_epoch_held() == (7, str(best_dir / 'model.ckpt-70'))

    # best/ of an earlier run while the main folder has nothing to resume: refused.
    with pytest.raises(cli.SidError) as e:
        run([], True, 1)
    assert 'holds the best checkpoint of an earlier run (epoch 7)' in str(e.value)
    # A record of other pairs cannot be compared: refused, naming the file.
    other = dict(record, pairs=['20002_00_0.1s.dng'], checkpoint='model.ckpt-70')
    with open(str(best_dir / 'best.json'), 'w') as f:
        json.dump(other, f)
    with pytest.raises(cli.SidError) as e:
        run([], False, 1)
    assert str(e.value).startswith('%s: the best checkpoint was scored on other validation pairs'
                                   % (best_dir / 'best.json'))
    # A kill between the checkpoint and its record: one warning, the next validation rewrites both.
    with open(str(best_dir / 'best.json'), 'w') as f:
        json.dump(dict(record, checkpoint='model.ckpt-30'), f)
    del said[:]
    logged = run([(1.0, 0.1)], False, 8)
    assert said[0] == ('warning: %s names model.ckpt-30 but %s holds model.ckpt-70 (an '
                       'interrupted update); the next validation replaces both'
                       % (best_dir / 'best.json', best_dir))
    assert [(g[4], g[5]) for g in logged] == [('1.0000', '8')]
    assert best_epoch_held() == (8, str(best_dir / 'model.ckpt-80'))


KEEP_BEST_CHILD = """
import os, signal, sys
import tensorflow.compat.v1 as tf
import network, safe_files, validation
tf.disable_v2_behavior()
best_dir, point = sys.argv[1], sys.argv[2]
with tf.Graph().as_default():
    network.unet(tf.placeholder(tf.float32, [1, None, None, 4]))
    saver = tf.train.Saver(network.model_variables())
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        validation.keep_best(saver, sess, best_dir, 10, {'epoch': 1, 'psnr': 20.0})
        def kill(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        module = validation if point == 'write_record' else safe_files
        real = getattr(module, point)
        def kill_after(*args, **kwargs):
            result = real(*args, **kwargs)
            kill()
            return result
        setattr(module, point, kill if point == 'write_record' else kill_after)
        validation.keep_best(saver, sess, best_dir, 20, {'epoch': 2, 'psnr': 21.0})
"""


@pytest.mark.parametrize('point', ['write_record', 'fsync_tree', 'replace_folder'])
def test_kill_9_at_each_step_of_keep_best_leaves_best_and_its_record_agreeing(tmp_path, point):
    """best/ and best.json are one unit (issue 16, case 6): killed before the record, before the
    swap, or right after it, best/ holds the old pair or the new one; the leftover goes at the
    next start."""
    best = tmp_path / 'ckpt' / 'best'
    proc = subprocess.run([sys.executable, '-c', KEEP_BEST_CHILD, str(best), point],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2'),
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    record = consistent_best(best)
    assert (record['epoch'], record['checkpoint']) == (
        (2, 'model.ckpt-20') if point == 'replace_folder' else (1, 'model.ckpt-10'))
    left = [n for n in os.listdir(str(best.parent)) if n != 'best']
    assert len(left) == 1 and left[0].startswith('.tmp-') and left[0].endswith('-best')
    assert checkpoints.remove_leftovers(str(best.parent)) == left
    assert os.listdir(str(best.parent)) == ['best']
