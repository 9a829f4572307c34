"""scripts/test_runtimes.py: the runner's own logic (the runner itself runs this suite)."""
import sys

import test_runtimes


def test_junit_counts_passed_failed_skipped_and_reasons(tmp_path):
    report = tmp_path / 'r.xml'
    report.write_text(
        '<testsuites><testsuite name="pytest" tests="5" failures="1" errors="1" skipped="1">'
        '<testcase name="a"/><testcase name="b"><failure message="x"/></testcase>'
        '<testcase name="c"><error message="y"/></testcase><testcase name="d"/>'
        '<testcase name="e"><skipped message="Horovod cannot be built"/></testcase>'
        '</testsuite></testsuites>')
    assert test_runtimes.junit_counts(str(report)) == (2, 2, 1, ['Horovod cannot be built'])


def test_an_interpreter_counts_only_if_it_starts_as_that_version(tmp_path):
    minor = '%d.%d' % sys.version_info[:2]
    assert test_runtimes.runs_as(sys.executable, minor)
    assert not test_runtimes.runs_as(sys.executable, '2.7')
    shim = tmp_path / ('python' + minor)  # like a pyenv shim of a version that is not active
    shim.write_text('#!/bin/sh\necho "pyenv: command not found" >&2\nexit 127\n')
    shim.chmod(0o755)
    assert not test_runtimes.runs_as(str(shim), minor)


def test_the_running_interpreter_serves_its_own_runtime():
    own = test_runtimes.runtime_of('%d.%d' % sys.version_info[:2])
    assert own in [name for name, _, _ in test_runtimes.RUNTIMES]
    assert test_runtimes.choose_interpreters([own]) == {own: sys.executable}


def test_one_pytest_worker_per_core_unless_the_caller_chooses(monkeypatch):
    monkeypatch.setattr(test_runtimes.os, 'sched_getaffinity', lambda pid: {0, 1}, raising=False)
    assert test_runtimes.parallel_args(['-k', 'network']) == ['-n', '2', '--dist', 'loadfile']
    monkeypatch.setattr(test_runtimes.os, 'sched_getaffinity', lambda pid: set(range(64)),
                        raising=False)
    assert test_runtimes.parallel_args([])[:2] == ['-n', str(test_runtimes.MAX_WORKERS)]
    assert test_runtimes.parallel_args(['-n', '1']) == []
    assert test_runtimes.parallel_args(['-p', 'no:xdist']) == []
    monkeypatch.setattr(test_runtimes.os, 'sched_getaffinity', lambda pid: {0}, raising=False)
    assert test_runtimes.parallel_args([]) == []


def test_a_plain_run_takes_this_pythons_runtime_and_all_or_ci_take_all():
    own = test_runtimes.runtime_of('%d.%d' % sys.version_info[:2])
    assert test_runtimes.runtimes_to_run([], False, False) == [own]
    assert test_runtimes.runtimes_to_run([], True, False) == []  # empty: all of them
    assert test_runtimes.runtimes_to_run([], False, True) == []
    assert test_runtimes.runtimes_to_run(['tf1.15'], False, False) == ['tf1.15']
    assert set(test_runtimes.MINUTES) == set(name for name, _, _ in test_runtimes.RUNTIMES)
