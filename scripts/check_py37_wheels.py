"""Check that requirements.txt resolves to binary wheels on the Ascend image (CPython 3.7).

Python 3.7 cannot be installed here, but pip can download for another interpreter: evaluate the
environment markers as Python 3.7 would, then fetch each pinned package's cp37 wheel without
installing it. Downloads about 450 MB (TensorFlow 1.15); run on demand, not in the test suite.

    python3 scripts/check_py37_wheels.py
"""
import os
import subprocess
import sys
import tempfile

from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY37 = {'python_version': '3.7', 'python_full_version': '3.7.5'}
PLATFORMS = ('manylinux1_x86_64', 'manylinux2010_x86_64', 'manylinux2014_x86_64',
             'manylinux_2_17_x86_64', 'any')


def py37_requirements(path):
    """The requirement lines that apply on Python 3.7, markers stripped."""
    out = []
    for line in open(path):
        line = line.split('#')[0].strip()
        if line:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(PY37):
                out.append(req.name + str(req.specifier))
    return out


def main():
    reqs = py37_requirements(os.path.join(ROOT, 'requirements.txt'))
    with tempfile.TemporaryDirectory() as folder:
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', folder,
               '--only-binary=:all:', '--python-version', '3.7', '--implementation', 'cp',
               '--abi', 'cp37m']
        for platform in PLATFORMS:
            cmd += ['--platform', platform]
        result = subprocess.run(cmd + reqs)
        if result.returncode:
            sys.exit('error: requirements.txt does not resolve for CPython 3.7 (see pip above)')
        for wheel in sorted(os.listdir(folder)):
            print(wheel)
    print('all %d Python 3.7 requirements resolve to wheels' % len(reqs))


if __name__ == '__main__':
    main()
