"""scripts/install_ascend.py against the real registry: every line of requirements-ascend.txt is
a cp37 wheel for both Ascend machines (linux_aarch64 and x86_64), and what those wheels need is
either in the file or what the image must provide, in versions the image's floors satisfy."""
import email.parser
import os
import subprocess
import sys
import zipfile

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import ROOT

import install_ascend

# Besides what IMAGE_PROVIDES checks: TensorFlow 1.15's own dependencies on the image.
TENSORFLOW_DEPENDENCIES = ('six', 'absl-py', 'protobuf', 'h5py', 'wheel')


def wheel_requirements(path, machine):
    """The Requires-Dist of a wheel that apply on the image (Python 3.7, Linux, `machine`)."""
    with zipfile.ZipFile(path) as wheel:
        name = [n for n in wheel.namelist() if n.endswith('.dist-info/METADATA')][0]
        metadata = email.parser.Parser().parsestr(wheel.read(name).decode('utf-8'))
    environment = {'python_version': '3.7', 'python_full_version': '3.7.5',
                   'sys_platform': 'linux', 'platform_system': 'Linux',
                   'platform_machine': machine, 'os_name': 'posix', 'extra': '',
                   'implementation_name': 'cpython', 'platform_python_implementation': 'CPython'}
    found = []
    for line in metadata.get_all('Requires-Dist') or []:
        requirement = Requirement(line)
        if requirement.marker is None or Marker(str(requirement.marker)).evaluate(environment):
            found.append(requirement)
    return metadata['Name'], metadata['Version'], found


@pytest.mark.parametrize('machine', install_ascend.MACHINES)
def test_every_line_is_a_cp37_wheel_and_the_dependencies_close(machine, tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'install_ascend.py'),
                          '--download=%s' % tmp_path, '--machine=%s' % machine],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    wheels = sorted(str(p) for p in tmp_path.iterdir())
    assert all(w.endswith('.whl') for w in wheels)  # --only-binary: nothing to build
    pins = dict((canonicalize_name(Requirement(line).name), Version(str(
        Requirement(line).specifier).lstrip('='))) for line in install_ascend.pinned())
    if machine == 'x86_64':
        pins['scipy'] = Version('1.2.1')
    got = {}
    for wheel in wheels:
        name, version, requires = wheel_requirements(wheel, machine)
        got[canonicalize_name(name)] = (Version(version), requires)
        platform_tag = os.path.basename(wheel)[:-len('.whl')].split('-')[-1]
        assert platform_tag == 'any' or machine in platform_tag
    assert dict((k, v[0]) for k, v in got.items()) == pins
    floors = dict((m, Version(low)) for m, low, _, _ in install_ascend.IMAGE_PROVIDES)
    for name, (version, requires) in got.items():
        for requirement in requires:
            dependency = canonicalize_name(requirement.name)
            if dependency in pins:
                assert pins[dependency] in requirement.specifier, (name, str(requirement))
            elif dependency in floors:  # the image's own: its floor must do
                assert floors[dependency] in requirement.specifier, (name, str(requirement))
            else:
                assert dependency in TENSORFLOW_DEPENDENCIES, (name, str(requirement))


def test_on_the_image_it_installs_only_what_is_missing(capsys):
    """On Python 3.7 with TensorFlow 1.15, numpy and SciPy present (this suite's tf1.15 runtime
    is such a stack) the plan is the file, nothing of the image's; elsewhere one line says which
    Python the image has."""
    if sys.version_info[:2] == install_ascend.PYTHON:
        assert install_ascend.main(['--dry_run']) == 0
        printed = capsys.readouterr().out.strip()
        assert printed == 'would install: ' + ' '.join(install_ascend.pinned())
        for module in ('tensorflow', 'numpy', 'scipy', 'h5py', 'protobuf'):
            assert module not in printed.lower()
    else:
        with pytest.raises(install_ascend.InstallError, match=r"^this is Python 3\.\d+, the "
                                                              r"Ascend image's is 3\.7"):
            install_ascend.main(['--dry_run'])


def test_what_the_image_must_provide_is_one_line(monkeypatch):
    versions = {'tensorflow': '1.15.0', 'numpy': '1.18.5', 'scipy': None}
    monkeypatch.setattr(install_ascend, 'installed_version', lambda python, m: versions[m])
    lines = install_ascend.plan('python3.7', 'x86_64')
    assert lines[-1] == 'scipy==1.2.1' and lines[:-1] == install_ascend.pinned()
    with pytest.raises(install_ascend.InstallError) as e:
        install_ascend.plan('python3.7', 'aarch64')
    assert str(e.value) == (
        'python3.7 cannot import scipy: the image must provide scipy >= 1.0.1, scikit-image '
        '0.18\'s floor (no scipy==1.2.1 wheel exists for aarch64; e.g. pip3.7 install '
        '--only-binary=:all: "scipy>=1.5,<1.8")')
    versions.update(tensorflow='2.4.1', scipy='1.2.1')
    with pytest.raises(install_ascend.InstallError, match='has tensorflow 2.4.1: the image must '
                                                          'provide tensorflow >= 1.15, < 1.16'):
        install_ascend.plan('python3.7', 'aarch64')
