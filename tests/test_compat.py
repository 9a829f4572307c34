"""Every Python file stays runnable on the Ascend image (TF 1.15 API and Python 3.7) and clean
(flake8: no unused names, no undefined ones, 100 columns; setup.cfg)."""
import os
import shutil
import subprocess
import sys

from conftest import ROOT

CHECKER = os.path.join(ROOT, 'tools', 'tf115', 'check_tf115.py')
# The checker is a development tool: it needs Python 3.8+ (ast feature_version), never the image.
TOOLS = os.path.join(ROOT, 'tools') + os.sep
# On Python 3.7 the checker runs with this interpreter instead (scripts/test_runtimes.py sets it).
CHECKER_PYTHON_ENV = 'SID_STATIC_CHECK_PYTHON'


def checker_python():
    if sys.version_info >= (3, 8):
        return sys.executable
    python = os.environ.get(CHECKER_PYTHON_ENV)
    assert python, ('the TF 1.15 API checker needs Python >= 3.8: set %s to such an interpreter '
                    '(bash scripts/run_tests.sh does)' % CHECKER_PYTHON_ENV)
    return python


def python_files(exclude=None):
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith('.') and d not in ('dataset', 'result_Sony',
                                                                          'checkpoint')]
        found += [os.path.join(folder, f) for f in files if f.endswith('.py')]
    return sorted(f for f in found if not (exclude and f.startswith(exclude)))


def test_the_project_has_its_scripts():
    names = {os.path.relpath(p, ROOT) for p in python_files()}
    assert {'network.py', 'npu_config.py', 'raw_io.py', 'scripts/make_dataset.py'} <= names


def test_tf115_api_checker_reports_nothing():
    result = subprocess.run([checker_python(), CHECKER] + python_files(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout
    assert ' 0 error(s)' in result.stdout


def test_vermin_finds_nothing_newer_than_python_37():
    vermin = shutil.which('vermin') or os.path.join(os.path.dirname(sys.executable), 'vermin')
    assert os.path.exists(vermin), 'vermin is not installed: pip install -r requirements-dev.txt'
    result = subprocess.run([vermin, '-t=3.7-', '--violations',
                             '--eval-annotations', '--no-tips'] + python_files(exclude=TOOLS),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout


def test_flake8_finds_nothing():
    """pyflakes catches what a test may not reach (an undefined name on an error path); the style
    half keeps 100 columns everywhere. Configuration: setup.cfg."""
    result = subprocess.run([sys.executable, '-m', 'flake8', '.'], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert 'No module named flake8' not in result.stdout, (
        'flake8 is not installed: pip install -r requirements-dev.txt')
    assert result.returncode == 0, result.stdout


def shell_scripts():
    found = [os.path.join(top, f) for top, _, files in os.walk(os.path.join(ROOT, 'scripts'))
             for f in files if f.endswith('.sh')]
    return sorted(found) + [os.path.join(ROOT, '.ci', 'run')]


def test_shellcheck_finds_nothing_in_the_shell_scripts():
    """The launchers and the two commands are bash: ShellCheck's warnings (unquoted expansions,
    unset variables, sourcing) are the bugs a test on one machine does not show."""
    shellcheck = os.path.join(os.path.dirname(sys.executable), 'shellcheck')
    assert os.path.exists(shellcheck), ('shellcheck is not installed: pip install -r '
                                        'requirements-dev.txt')
    assert len(shell_scripts()) >= 10
    result = subprocess.run([shellcheck, '--external-sources', '--source-path=SCRIPTDIR',
                             '--severity=warning'] + shell_scripts(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout
