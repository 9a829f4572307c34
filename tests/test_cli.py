"""Command lines (cli.py): a positional argument a script does not take is refused in one line,
never ignored (`python3 test_Sony.py photo.dng` used to re-run the default list and exit 0);
--help answers at once, exit 0, without TensorFlow; a bad input is refused before TensorFlow is
imported; TensorFlow's start-up stays off stderr, and it comes in graph mode."""
import os
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, ctrl_c_enabled, run_script

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


@pytest.mark.parametrize('script,args,message', [
    ('train_Sony.py', ['--device=cpu', '--train_list={tmp}/none.txt'],
     '{tmp}/none.txt: cannot read list file'),
    ('test_Sony.py', ['--device=cpu', '--test_list={tmp}/none.txt'],
     '{tmp}/none.txt: cannot read list file'),
    ('scripts/export_model.py', ['--out_dir={tmp}/file/export'],
     '{tmp}/file: cannot write the new export'),
])
def test_a_bad_input_is_refused_before_tensorflow_is_imported(
        tmp_path, no_tensorflow, script, args, message):
    """TensorFlow comes in at its first use (cli.import_tensorflow), after the input checks: on
    a PYTHONPATH where importing it fails, the refusal is still the one line."""
    (tmp_path / 'file').write_text('not a folder')
    proc = run_script(script, *[a.format(tmp=tmp_path) for a in args], cwd=str(tmp_path),
                      env=no_tensorflow)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ' + message.format(tmp=tmp_path)), \
        proc.stderr[-2000:]


def test_tensorflow_is_imported_quietly_unless_the_user_asks_for_its_logs():
    probe = 'import cli; tf = cli.import_tensorflow(); print(tf.__name__, tf.executing_eagerly())'
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop(cli.TF_LOG_ENV, None)
    quiet = subprocess.run([sys.executable, '-c', probe], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ''
    assert quiet.stdout.strip().endswith('compat.v1 False')  # graph mode, as on TF 1.15


# ---------------------------------------------------------------- worker pools and Ctrl-C

_HELD = threading.Lock()


def _parent_lock_is_free(_):
    """In a pool worker: a forked copy of a lock another thread held stays locked forever."""
    return _HELD.acquire(timeout=0.5)


def test_pool_workers_do_not_inherit_a_lock_held_by_another_thread():
    # what deadlocked a forked cache worker: TF's and tqdm's threads were running in the parent
    held, release = threading.Event(), threading.Event()

    def hold():
        with _HELD:
            held.set()
            release.wait()
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait()
        with cli.process_pool(2) as pool:
            assert pool.map(_parent_lock_is_free, range(2)) == [True, True]
    finally:
        release.set()
        holder.join()


def run_wrapped(body, imports=''):
    """Run `body` as a fail_cleanly-wrapped main in a fresh interpreter: (exit code, stderr)."""
    import subprocess
    import sys
    import textwrap
    code = imports + '\nimport os, signal, cli\n@cli.fail_cleanly\ndef main():\n%s\nmain()\n' % (
        textwrap.indent(textwrap.dedent(body), '    '))
    proc = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          preexec_fn=ctrl_c_enabled,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return proc.returncode, proc.stderr


def test_a_ctrl_c_inside_sigint_held_takes_effect_at_its_end():
    # what export_model.py holds around the tf2onnx / onnxruntime imports: a KeyboardInterrupt
    # inside onnx's module initialisation crashed Python 3.13 (SIGSEGV) instead of unwinding
    code, stderr = run_wrapped('''
        with cli.sigint_held():
            os.kill(os.getpid(), signal.SIGINT)
            sys.stderr.write('the block ran to its end\\n')
        print('never')
    ''', 'import sys')
    assert (code, stderr) == (cli.EXIT_INTERRUPTED,
                              'the block ran to its end\nerror: interrupted (SIGINT)\n')


def test_a_ctrl_c_that_library_code_swallowed_still_stops_the_run():
    # what a bare `except:` in a library, or a C API clearing the error, does to a Ctrl-C
    assert run_wrapped('''
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            pass
        cli.raise_if_interrupted()
        print('never')
    ''') == (cli.EXIT_INTERRUPTED, 'error: interrupted (SIGINT)\n')
    assert run_wrapped('cli.raise_if_interrupted()') == (0, '')


def test_a_ctrl_c_surfacing_as_a_systemerror_from_c_code_is_one_line_and_exit_130():
    # TF 1.15's SWIG wrappers: "SystemError: <built-in function TF_NewBuffer> returned a result
    # with an error set", caused by the KeyboardInterrupt raised inside the call
    assert run_wrapped('''
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError('<built-in function TF_NewBuffer> returned a result with an error '
                              'set') from e
    ''') == (cli.EXIT_INTERRUPTED, 'error: interrupted (SIGINT)\n')
    code, stderr = run_wrapped('raise SystemError("a real one")')
    assert code == 1 and stderr.splitlines()[-1] == 'SystemError: a real one'
