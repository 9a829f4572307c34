"""Install on the Ascend training image exactly what it lacks, from wheels, never touching its
TensorFlow.

    python3.7 scripts/install_ascend.py              # on the image: check, install, import
    python3.7 scripts/install_ascend.py --dry_run    # say what it would install
    python3 scripts/install_ascend.py --download=DIR --machine=aarch64   # fetch that machine's
                                                     # wheels only (tests/test_install_ascend.py)

Why not `pip3.7 install -r requirements.txt`: the image (CANN 5.0.x, Python 3.7, aarch64, or an
x86_64 host) ships Huawei's own TensorFlow 1.15 build with numpy and friends. PyPI has no
linux_aarch64 cp37 wheels of tensorflow==1.15.0, numpy<1.19, scipy==1.2.1 or h5py<3, so pip would
try to build them from source or replace what the image ships. requirements-ascend.txt pins the
rest of the stack to versions with cp37 wheels on both machines; they go in with --no-deps and
--only-binary=:all:, so pip changes nothing else and never compiles.

What the image must provide: TensorFlow 1.15 (npu_bridge comes with CANN), numpy >= 1.16.5 and
SciPy >= 1.0.1. SciPy is installed here only where a wheel of the design card's 1.2.1 exists
(x86_64); on aarch64 a missing SciPy is an error that says so. Standard library only: it runs
before anything else is installed.
"""
import argparse
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, 'requirements-ascend.txt')
PYTHON = (3, 7)
MACHINES = ('aarch64', 'x86_64')
PLATFORM_TAG = 'manylinux2014_%s'  # both machines' wheels here are manylinux2014 or older
SCIPY_X86_64 = 'scipy==1.2.1'  # the design card's; PyPI has no aarch64 cp37 wheel of it
# What the image must already have: (module, lowest version, first version too new, why).
IMAGE_PROVIDES = (('tensorflow', '1.15', '1.16', 'Huawei\'s TensorFlow 1.15 build with CANN\'s '
                   'npu_bridge'),
                  ('numpy', '1.16.5', None, 'scikit-image 0.18\'s floor'),
                  ('scipy', '1.0.1', None, 'scikit-image 0.18\'s floor'))
# Import name of each requirement the check at the end imports.
IMPORTS = ('rawpy', 'tifffile', 'skimage', 'PIL', 'matplotlib', 'exifread', 'tqdm', 'absl')


class InstallError(Exception):
    """One line for the user, exit 1."""


def pinned():
    """The requirement lines of requirements-ascend.txt."""
    with open(REQUIREMENTS) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


def version_tuple(text):
    parts = []
    for part in text.split('.'):
        digits = ''.join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
        if digits != part:
            break
    return tuple(parts)


def installed_version(python, module):
    """The module's __version__ ('' if it has none) as the image's interpreter sees it, or None
    if it does not import."""
    code = 'import %s as m; print(getattr(m, "__version__", ""))' % module
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    out = subprocess.run([python, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         universal_newlines=True, env=env)
    return out.stdout.strip() if out.returncode == 0 else None


def plan(python, machine):
    """The requirement lines to install here, after checking what the image must provide."""
    lines = pinned()
    for module, minimum, too_new, why in IMAGE_PROVIDES:
        have = installed_version(python, module)
        if have is not None and version_tuple(minimum) <= version_tuple(have) < version_tuple(
                too_new or '999'):
            continue
        if module == 'scipy' and have is None and machine == 'x86_64':
            lines.append(SCIPY_X86_64)
            continue
        found = 'has %s %s' % (module, have) if have else 'cannot import %s' % module
        hint = (' (no %s wheel exists for aarch64; e.g. pip3.7 install --only-binary=:all: '
                '"scipy>=1.5,<1.8")' % SCIPY_X86_64 if module == 'scipy' else '')
        wanted = '%s >= %s' % (module, minimum) + (', < %s' % too_new if too_new else '')
        raise InstallError('%s %s: the image must provide %s, %s%s'
                           % (python, found, wanted, why, hint))
    return lines


def pip(python, args, lines):
    command = [python, '-m', 'pip'] + args + ['--no-deps', '--only-binary=:all:'] + lines
    print(' '.join(command))
    return subprocess.call(command)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dry_run', action='store_true', help='check and print, install nothing')
    parser.add_argument('--download', metavar='DIR',
                        help='only download the wheels for --machine into DIR (no checks)')
    parser.add_argument('--machine', choices=MACHINES, default=platform.machine(),
                        help='the machine to fetch wheels for (default: this one)')
    args = parser.parse_args(argv)
    python = sys.executable
    if args.download:
        lines = pinned() + ([SCIPY_X86_64] if args.machine == 'x86_64' else [])
        return pip(python, ['download', '--dest', args.download, '--platform',
                            PLATFORM_TAG % args.machine, '--python-version',
                            '%d.%d' % PYTHON, '--implementation', 'cp', '--abi', 'cp37m'], lines)
    if sys.version_info[:2] != PYTHON:
        raise InstallError('this is Python %d.%d, the Ascend image\'s is %d.%d; elsewhere use '
                           'bash scripts/make_venv.sh' % (sys.version_info[:2] + PYTHON))
    if args.machine not in MACHINES:
        raise InstallError('machine %s: the Ascend images are aarch64 or x86_64' % args.machine)
    lines = plan(python, args.machine)
    if args.dry_run:
        print('would install: %s' % ' '.join(lines))
        return 0
    if pip(python, ['install'], lines) != 0:
        raise InstallError('pip could not install requirements-ascend.txt (its message is above)')
    broken = [m for m in IMPORTS if installed_version(python, m) is None]
    if broken:
        raise InstallError('installed, but %s do not import with %s' % (', '.join(broken), python))
    print('ready: %s imports %s next to TensorFlow %s'
          % (python, ', '.join(IMPORTS), installed_version(python, 'tensorflow')))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except InstallError as e:
        sys.stderr.write('error: %s\n' % e)
        sys.exit(1)
