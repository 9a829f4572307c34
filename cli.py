"""How every script starts and ends: flags, help, stray arguments, a quiet TensorFlow, one-line
errors, Ctrl-C, and worker processes.

Every entry script ends with `cli.run(main, define_flags)` instead of absl's `app.run(main)`:
- `-h` / `--help` / `--helpfull` print the flags and exit 0 before TensorFlow is ever imported
  (absl's own --help exits 1, and importing TensorFlow first costs seconds);
- positional arguments are refused in one line (absl would hand them to main, which ignored
  them: `test_Sony.py photo.dng` used to re-run the default list and exit 0);
- TensorFlow is imported at its first use (import_tensorflow), not before main: a bad list, file
  or folder is refused in a fraction of a second instead of after the seconds the import takes;
  its C++ start-up chatter is kept off stderr, so a bad input still ends in exactly one line on
  every runtime (TF 1.15 logs `failed call to cuInit` at ERROR level, TF >= 2.19 logs through
  absl before anything can configure it);
- main's SidError becomes `error: <one line>` and exit 1, Ctrl-C one line and exit 130
  (fail_cleanly).
Setting TF_CPP_MIN_LOG_LEVEL yourself (e.g. 0) keeps TensorFlow's C++ logging at that level; its
Python deprecation notices stay off whatever the environment says.
"""
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading

TF_LOG_ENV = 'TF_CPP_MIN_LOG_LEVEL'
QUIET_TF_LOG_LEVEL = '3'  # C++ INFO, WARNING and ERROR lines off; failures still raise in Python
HELP_ARGS = ('-h', '--help', '-?', '--helpshort', '--helpfull')
EXIT_INTERRUPTED = 128 + 2  # the shell's status for a run stopped by SIGINT (Ctrl-C)


class SidError(Exception):
    """A bad input or state: the message is one line naming the file (and line of a list file);
    fail_cleanly prints it as `error: <message>` and exits 1."""


def short_list(names, shown=3):
    """'a, b, c and 4 more': names for a one-line message."""
    more = len(names) - shown
    return ', '.join(names[:shown]) + (' and %d more' % more if more > 0 else '')


_graph_mode = []  # holds True once disable_v2_behavior has run in this process


def import_tensorflow():
    """tensorflow.compat.v1 in graph mode, imported quietly unless the user asked for
    TensorFlow's logs: every module gets TensorFlow through here, so whichever needs it first
    imports it, and nothing imports it before a script's input checks.

    What the import itself writes to the C-level stderr is held in a temporary file and shown
    only if the import fails, so a broken installation still explains itself.
    """
    logging.getLogger('tensorflow').setLevel(logging.ERROR)  # deprecation notices: always off
    if TF_LOG_ENV not in os.environ and 'tensorflow' not in sys.modules:
        _import_quietly()
    import tensorflow.compat.v1 as tf
    if not _graph_mode:
        tf.disable_v2_behavior()  # TF 2.x: sessions and placeholders, as TF 1.15
        _graph_mode.append(True)
    return tf


def _import_quietly():
    os.environ[TF_LOG_ENV] = QUIET_TF_LOG_LEVEL
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow.compat.v1  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode('utf-8', 'replace'))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def run(main, define_flags, positional=False, hint=''):
    """absl's app.run with the conventions above.

    positional=True for scripts whose main takes file arguments itself (it then gets them all in
    argv[1:]); `hint` says where the script takes its input from, for the refusal of a stray
    argument.
    """
    from absl import app
    # absl's handler shows INFO records; matplotlib's first use says 'generated new fontManager'.
    logging.getLogger('matplotlib').setLevel(logging.WARNING)
    define_flags()
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        app.usage(shorthelp='--helpfull' not in sys.argv, writeto_stdout=True, exitcode=0)

    def checked_main(argv):
        if len(argv) > 1 and not positional:
            raise SidError('unexpected argument%s %s: %s takes flags only (%s)'
                           % ('s' if len(argv) > 2 else '', ' '.join(argv[1:]),
                              os.path.basename(argv[0]), hint or 'see --help'))
        return main(argv)

    app.run(fail_cleanly(checked_main))


_sigints_seen = []


def _note_sigint(signum, frame):
    """Python's own Ctrl-C behaviour (KeyboardInterrupt), plus a note of it: library code that
    swallows the exception on its way up (a bare except, a C API that clears errors) cannot make
    the run forget the Ctrl-C (raise_if_interrupted)."""
    del frame
    _sigints_seen.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_held():
    """A Ctrl-C during the block takes effect at its end. Around imports of C extensions: a
    KeyboardInterrupt raised inside one's initialisation can crash the process instead of
    unwinding (seen on Python 3.13: SIGSEGV in onnx's module init, under tf2onnx)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (
            signal.SIG_IGN, None):
        yield  # no Ctrl-C reaches this block anyway
        return
    held = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        _sigints_seen.append(held[0])
        raise KeyboardInterrupt


def raise_if_interrupted():
    """Raise again a Ctrl-C that arrived but was swallowed before it reached fail_cleanly: called
    where a script replaces the SIGINT handler with its own (train_Sony.py's loop)."""
    if _sigints_seen:
        raise KeyboardInterrupt


def _from_interrupt(error):
    """Whether `error` is a Ctrl-C in disguise: TF 1.15's C API turns a KeyboardInterrupt raised
    inside it into `SystemError: ... returned a result with an error set`, caused by it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def fail_cleanly(main):
    """Decorator for a script's main(): a SidError ends the run with its one-line message, exit 1;
    Ctrl-C (SIGINT, where the script has no handler of its own) with one line, exit 130."""
    import functools
    import signal
    import threading

    def interrupted():
        # The cleanup that matters (temporaries removed, worker pools terminated) ran in the
        # `finally`s the interrupt passed through. Interpreter teardown would add tracebacks
        # of objects it interrupted half-built (a progress bar's __del__), so skip it.
        sys.stdout.flush()
        sys.stderr.write('error: interrupted (SIGINT)\n')
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, _note_sigint)
        try:
            return main(*args, **kwargs)
        except SidError as e:
            sys.stderr.write('error: %s\n' % e)
            sys.exit(1)
        except KeyboardInterrupt:
            interrupted()
        except Exception as e:
            if _from_interrupt(e):
                interrupted()
            raise
    return wrapper


def process_pool(processes, initializer=None):
    """A multiprocessing Pool whose workers start from a clean single-threaded process.

    By the time a script needs workers, TensorFlow, OpenBLAS and tqdm have started threads, and
    fork() of a multi-threaded process can deadlock the child (Python 3.12+ warns so; a CI run on
    Python 3.13 hung 600 s in the cache build's pool). A fork server (spawn where there is none)
    never inherits those threads; its price is one interpreter start, well under a second.
    """
    import multiprocessing
    method = 'forkserver' if 'forkserver' in multiprocessing.get_all_start_methods() else 'spawn'
    return multiprocessing.get_context(method).Pool(processes, initializer=initializer)
