"""Run the test suite on every runtime this machine has, each in its own cached virtualenv.

The project promises three stacks, so the suite can run on each one found (the interpreter
running this script serves its own; the others come through pyenv or PATH). By default a
developer's run takes only the driving interpreter's runtime and says so; --all and CI=true take
all three:

    tf1.15   Python 3.7         TensorFlow 1.15.0 - the Ascend image's stack
    tf2.15   Python 3.8-3.11    tensorflow-cpu 2.15.1 (2.13.1 on 3.8) - what Horovod builds against
    current  Python 3.12/3.13   the newest tensorflow-cpu

Each runtime's venv is made (or reused) by scripts/make_venv.sh, Horovod is built where it can be
(scripts/install_horovod.sh; the wheel is cached), then pytest runs with that venv first on PATH,
in one pytest-xdist worker per core (at most 4; test files stay whole on one worker): the tests
mostly wait for the scripts they start, so one worker leaves a core idle a third of the time.
The run ends with one table (runtime | passed | failed | skipped | seconds) and a closing
"N passed, N failed" line. With CI=true every runtime is required: a missing one is a failure,
and the venvs live in ~/.cache/sid-for-ascend/venvs (SID_VENV_DIR) instead of the clone's .venv/,
because every CI run starts from a fresh clone: a rerun then reuses them (their stamps still
guard against stale requirements).

    python3 scripts/test_runtimes.py                 # this Python's runtime (CI=true: all three)
    python3 scripts/test_runtimes.py --all           # every runtime found
    python3 scripts/test_runtimes.py -k network      # arguments after the options go to pytest
    python3 scripts/test_runtimes.py --only=tf1.15   # one runtime
Standard library only: it runs on whatever python3 the machine has, before any venv exists.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name, Python minor versions in order of preference, whether Horovod 0.28.1 can be built there
RUNTIMES = (
    ('tf1.15', ('3.7',), True),
    ('tf2.15', ('3.11', '3.10', '3.9', '3.8'), True),  # 3.8: tensorflow-cpu 2.13.1
    ('current', ('3.13', '3.12'), False),  # Horovod 0.28.1 does not build against TF >= 2.16
)
CI_VENV_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'sid-for-ascend', 'venvs')
# Minutes each runtime's suite took on 2 cores (CI=true bash .ci/run from a clean clone, venvs
# reused); creating a venv the first time adds a few minutes of downloads and installs.
MINUTES = {'tf1.15': 9, 'tf2.15': 10, 'current': 11}
MAX_WORKERS = 4  # pytest-xdist workers; each holds a TensorFlow and starts scripts of its own
TABLE_HEADER = ('runtime', 'python', 'tensorflow', 'passed', 'failed', 'skipped', 'seconds')


def minor_version(python):
    out = subprocess.check_output(
        [python, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
        stderr=subprocess.DEVNULL)
    return out.decode().strip()


def runs_as(python, minor):
    """Whether `python` starts and is Python `minor` (a pyenv shim of an inactive version is on
    PATH but does not start)."""
    try:
        return minor_version(python) == minor
    except (OSError, subprocess.CalledProcessError):
        return False


def find_python(minor):
    """An interpreter for Python `minor` (e.g. '3.7'): on PATH, else the newest pyenv build."""
    found = shutil.which('python' + minor)
    if found and runs_as(found, minor):
        return found
    pyenv_root = os.environ.get('PYENV_ROOT') or os.path.expanduser('~/.pyenv')
    if shutil.which('pyenv'):
        try:
            pyenv_root = subprocess.check_output(['pyenv', 'root']).decode().strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    builds = glob.glob(os.path.join(pyenv_root, 'versions', minor + '.*', 'bin', 'python' + minor))
    key = lambda p: [int(x) for x in re.findall(r'\d+', p.split(os.sep)[-3])]
    builds = [p for p in sorted(builds, key=key, reverse=True) if runs_as(p, minor)]
    return builds[0] if builds else None


def runtime_of(minor):
    for name, minors, _ in RUNTIMES:
        if minor in minors:
            return name
    return None


def runtimes_to_run(only, every, ci):
    """The runtimes asked for (empty: all): --only's; all under --all or CI; else this Python's
    own, so that a developer's plain run takes minutes, not the three runtimes' half hour."""
    own = runtime_of('%d.%d' % sys.version_info[:2])
    if only or every or ci or own is None:
        return only
    return [own]


def choose_interpreters(only):
    """{runtime: interpreter or None}; the running interpreter serves its own runtime."""
    chosen = {}
    own = runtime_of('%d.%d' % sys.version_info[:2])
    for name, minors, _ in RUNTIMES:
        if only and name not in only:
            continue
        if name == own:
            chosen[name] = sys.executable
            continue
        chosen[name] = next((p for p in map(find_python, minors) if p), None)
    return chosen


def parallel_args(pytest_args):
    """pytest-xdist's options for one worker per usable core, unless the caller chose (-n) or
    turned xdist off (-p no:xdist)."""
    if any(a.startswith(('-n', '--numprocesses')) or a.endswith('no:xdist') for a in pytest_args):
        return []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    workers = min(cores or 1, MAX_WORKERS)
    return ['-n', str(workers), '--dist', 'loadfile'] if workers > 1 else []


def run(cmd, env=None, capture=False):
    print('+ ' + ' '.join(cmd), flush=True)
    if capture:
        return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, universal_newlines=True)
    return subprocess.run(cmd, env=env)


def junit_counts(path):
    """(passed, failed, skipped, skip reasons) from pytest's JUnit XML report."""
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
    tests, failures, errors, skipped = (int(suite.get(k, 0))
                                        for k in ('tests', 'failures', 'errors', 'skipped'))
    reasons = sorted(set(s.get('message', '') for s in suite.iter('skipped')))
    return tests - failures - errors - skipped, failures + errors, skipped, reasons


def test_one(name, python, pytest_args, static_python):
    """Prepare the venv of one runtime and run the suite in it; returns a table row."""
    start = time.time()
    made = run(['bash', os.path.join(ROOT, 'scripts', 'make_venv.sh'), '--dev', python],
               capture=True)
    if made.returncode != 0:
        return [name, '?', '?', 0, 1, 0, time.time() - start], ['venv could not be made']
    vpy = made.stdout.strip().splitlines()[-1]
    vbin = os.path.dirname(vpy)
    env = dict(os.environ, PATH=vbin + os.pathsep + os.environ.get('PATH', ''),
               VIRTUAL_ENV=os.path.dirname(vbin),
               SID_STATIC_CHECK_PYTHON=static_python)
    env.pop('PYTHONHOME', None)
    versions = subprocess.check_output(
        [vpy, '-c', 'import sys, tensorflow as tf; print(sys.version.split()[0], tf.__version__)'],
        env=dict(env, TF_CPP_MIN_LOG_LEVEL='3'), stderr=subprocess.DEVNULL,
        universal_newlines=True).split()
    print('== runtime %s: Python %s (%s), TensorFlow %s' % (name, versions[0], vpy, versions[1]),
          flush=True)
    if dict((n, h) for n, _, h in RUNTIMES)[name]:
        if run(['bash', os.path.join(ROOT, 'scripts', 'install_horovod.sh')], env=env).returncode:
            print('Horovod could not be built for %s: its tests will fail' % name, flush=True)
    report = os.path.join(ROOT, '.pytest_cache', 'junit-%s.xml' % name)
    if os.path.exists(report):
        os.remove(report)
    run([vpy, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', '--junitxml=' + report,
         os.path.join(ROOT, 'tests')] + parallel_args(pytest_args) + pytest_args, env=env)
    if not os.path.exists(report):  # pytest died before writing its report
        return [name] + versions + [0, 1, 0, time.time() - start], ['pytest wrote no report']
    passed, failed, skipped, reasons = junit_counts(report)
    return [name] + versions + [passed, failed, skipped, time.time() - start], reasons


def print_table(rows):
    cells = [TABLE_HEADER] + [tuple(r[:6]) + ('%.0f' % r[6],) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(TABLE_HEADER))]
    for c in cells:
        print('| ' + ' | '.join(str(x).ljust(w) for x, w in zip(c, widths)) + ' |')


def main(argv):
    if '-h' in argv or '--help' in argv:
        print(__doc__)
        return 0
    only = [a.split('=', 1)[1] for a in argv if a.startswith('--only=')]
    every = '--all' in argv
    pytest_args = [a for a in argv if not a.startswith('--only=') and a != '--all']
    for name in only:
        if name not in [r[0] for r in RUNTIMES]:
            sys.exit('test_runtimes.py: unknown runtime %s (one of %s)'
                     % (name, ', '.join(r[0] for r in RUNTIMES)))
    ci = os.environ.get('CI', '').lower() == 'true'
    if ci:
        os.environ.setdefault('SID_VENV_DIR', CI_VENV_DIR)
    chosen = choose_interpreters(runtimes_to_run(only, every, ci))
    minutes = sum(MINUTES[name] for name in chosen)
    print('running the suite on %s: about %d minutes on 2 cores%s' % (
        ', '.join(chosen), minutes, '' if len(chosen) == len(RUNTIMES) else
        '; --all runs the three runtimes (tf1.15, tf2.15, current), about %d minutes'
        % sum(MINUTES.values())), flush=True)
    # The TF 1.15 API checker needs Python >= 3.8 (ast feature_version): on the 3.7 runtime
    # tests/test_compat.py runs it with this interpreter instead.
    static_python = sys.executable if sys.version_info >= (3, 8) else ''
    rows, notes = [], []
    for name in chosen:
        python = chosen[name]
        if python is None:
            wanted = ' or '.join('python' + m for m in dict((n, ms) for n, ms, _ in RUNTIMES)[name])
            rows.append([name, 'missing', '-', 0, 1 if ci else 0, 0, 0.0])
            notes.append('%s: no %s found (pyenv or PATH)%s'
                         % (name, wanted, ': required under CI' if ci else '; not tested'))
            continue
        row, reasons = test_one(name, python, pytest_args, static_python)
        rows.append(row)
        notes += ['%s: skipped: %s' % (name, r) for r in reasons]
    print()
    print_table(rows)
    for note in notes:
        print('  ' + note)
    passed, failed, skipped = (sum(r[i] for r in rows) for i in (3, 4, 5))
    print('total: %d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 1 if failed or not rows else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
