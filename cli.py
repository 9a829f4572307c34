"""How every script starts: flags, help, stray arguments, and a quiet TensorFlow.

Every entry script ends with `cli.run(main, define_flags)` instead of absl's `app.run(main)`:
- `-h` / `--help` / `--helpfull` print the flags and exit 0 before TensorFlow is ever imported
  (absl's own --help exits 1, and importing TensorFlow first costs seconds);
- positional arguments are refused in one line (absl would hand them to main, which ignored
  them: `test_Sony.py photo.dng` used to re-run the default list and exit 0);
- TensorFlow is imported once, before main, with its C++ start-up chatter kept off stderr, so a
  bad input still ends in exactly one line on every runtime (TF 1.15 logs `failed call to
  cuInit` at ERROR level, TF >= 2.19 logs through absl before anything can configure it);
- main's SidError becomes `error: <one line>` and exit 1 (sid_io.fail_cleanly).
Setting TF_CPP_MIN_LOG_LEVEL yourself (e.g. 0) keeps all of TensorFlow's logging.
"""
import logging
import os
import sys
import tempfile

TF_LOG_ENV = 'TF_CPP_MIN_LOG_LEVEL'
QUIET_TF_LOG_LEVEL = '3'  # C++ INFO, WARNING and ERROR lines off; failures still raise in Python
HELP_ARGS = ('-h', '--help', '-?', '--helpshort', '--helpfull')


def import_tensorflow():
    """Import tensorflow.compat.v1 quietly unless the user asked for TensorFlow's logs.

    What the import itself writes to the C-level stderr is held in a temporary file and shown
    only if the import fails, so a broken installation still explains itself.
    """
    if TF_LOG_ENV in os.environ or 'tensorflow' in sys.modules:
        import tensorflow.compat.v1 as tf
        return tf
    os.environ[TF_LOG_ENV] = QUIET_TF_LOG_LEVEL
    logging.getLogger('tensorflow').setLevel(logging.ERROR)  # deprecation notices
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow.compat.v1 as tf
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode('utf-8', 'replace'))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def run(main, define_flags, tensorflow=True, positional=False, hint=''):
    """absl's app.run with the conventions above.

    tensorflow=False for scripts that never need it; positional=True for scripts whose main
    takes file arguments itself (it then gets them all in argv[1:]); `hint` says where the
    script takes its input from, for the refusal of a stray argument.
    """
    from absl import app
    import sid_io
    define_flags()
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        app.usage(shorthelp='--helpfull' not in sys.argv, writeto_stdout=True, exitcode=0)

    def checked_main(argv):
        if len(argv) > 1 and not positional:
            raise sid_io.SidError('unexpected argument%s %s: %s takes flags only (%s)'
                                  % ('s' if len(argv) > 2 else '', ' '.join(argv[1:]),
                                     os.path.basename(argv[0]), hint or 'see --help'))
        if tensorflow:
            import_tensorflow().disable_v2_behavior()
        return main(argv)

    app.run(sid_io.fail_cleanly(checked_main))
