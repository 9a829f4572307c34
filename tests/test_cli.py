"""Command lines (cli.py): a positional argument a script does not take is refused in one line,
never ignored (`python3 test_Sony.py photo.dng` used to re-run the default list and exit 0);
--help answers at once, exit 0, without TensorFlow; TensorFlow's start-up stays off stderr."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_script

import cli


@pytest.mark.parametrize('script,hint', [
    ('test_Sony.py', 'it reads its pairs from --test_list; for your own raw files use '
                     'scripts/enhance.py'),
    ('train_Sony.py', 'it reads its pairs from --train_list'),
    ('eval.py', 'it scores the PNGs in --result_dir'),
    ('scripts/export_model.py', 'the model comes from --checkpoint_dir'),
    ('scripts/make_dataset.py', 'see --help'),
])
def test_a_positional_argument_is_refused_not_ignored(tmp_path, script, hint):
    proc = run_script(script, 'photo.dng', cwd=str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'error: unexpected argument photo.dng: %s takes flags only (%s)'
        % (os.path.basename(script), hint)]
    assert os.listdir(str(tmp_path)) == []  # nothing started, nothing written


@pytest.mark.parametrize('script', ['train_Sony.py', 'test_Sony.py', 'eval.py',
                                    'scripts/enhance.py', 'scripts/export_model.py'])
def test_help_exits_0_without_loading_tensorflow(script):
    probe = ('import runpy, sys; sys.argv = [%r, "--help"]\n'
             'try:\n    runpy.run_path(%r, run_name="__main__")\n'
             'except SystemExit as e:\n    code = e.code\n'
             'print("EXIT", code, "tensorflow" in sys.modules)'
             % (script, os.path.join(ROOT, script)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'scripts')]))
    proc = subprocess.run([sys.executable, '-c', probe], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=120)
    assert proc.stdout.splitlines()[-1] == 'EXIT 0 False', proc.stderr[-2000:]
    assert '--' in proc.stdout and proc.stderr == ''


def test_tensorflow_is_imported_quietly_unless_the_user_asks_for_its_logs():
    probe = 'import cli; tf = cli.import_tensorflow(); print(tf.__name__)'
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop(cli.TF_LOG_ENV, None)
    quiet = subprocess.run([sys.executable, '-c', probe], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ''
    assert quiet.stdout.strip().endswith('compat.v1')
