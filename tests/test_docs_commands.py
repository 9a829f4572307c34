"""The commands of README.md and docs/*.md run as written.

Every line of every ```bash block in those files is a documented command (a line ending in a
backslash continues on the next; a `#` after a blank starts a comment). Each must be listed here:

- in OFFLINE, with the form this test runs: the command itself ('{cmd}'), or with flags appended
  that make it small (fewer epochs or scenes) or environment variables in front. The commands run
  in that order, as a user's session would, each in a fresh `bash` after `source
  scripts/activate.sh`, in temporary copies of the project (commands of one copy share its
  files), so nothing is written into this clone; `/tmp/` in a command becomes a scratch folder.
  Where an entry names some text, the command's output must contain it.
- or in NOT_OFFLINE, with the reason it cannot run here (the real SID data, Ascend, Horovod, a
  GPU, the network, your own raw files, a benchmark's minutes).

A documented command in neither table fails, and so does a table entry the documents no longer
hold, a command that fails, a command-like line outside a bash block, and a local link to a file
or heading that does not exist.

In the copies, scripts/make_venv.sh is replaced by a stand-in that makes `.venv/py3.X` a
virtualenv of the interpreter running this test (the real one would download packages): the
activation, the demo and the launchers then use this runtime's packages.
"""
import glob
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ['README.md'] + sorted(os.path.relpath(p, ROOT)
                                   for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
AS_WRITTEN = '{cmd}'
COMMAND_TIMEOUT = 900  # seconds; the slowest entry takes well under a minute on 2 cores

# (copy, command as documented, what runs, text the output must contain or None), in order.
OFFLINE = (
    # A user's session after cloning: the demo, then the README's and the docs' commands on the
    # generated data it made.
    ('session', 'source scripts/activate.sh', '{cmd} && command -v python3', '/.venv/py'),
    ('session', 'bash scripts/run_demo.sh', 'EPOCHS=2 VAL_EVERY=1 {cmd}',
     'done; to run the README'),
    ('session', 'python3 scripts/make_dataset.py', AS_WRITTEN, 'natural scenes'),
    ('session', 'python3 train_Sony.py --train_list=dataset/Sony_train_list.txt '
                '--val_list=dataset/Sony_val_list.txt --ps=128 --epochs=300 --val_every=50 '
                '--checkpoint_every=50 --log_file=result_Sony/train_log.txt',
     '{cmd} --epochs=3', 'trained to epoch 3'),
    ('session', 'python3 scripts/plot_training.py --log=result_Sony/train_log.txt '
                '--out=result_Sony/training.png', AS_WRITTEN, '3 epochs'),
    ('session', 'python3 test_Sony.py --test_list=dataset/Sony_test_list.txt', AS_WRITTEN,
     'tested 3 pairs'),
    ('session', 'python3 eval.py --ssim=all', AS_WRITTEN, 'average psnr:'),
    ('session', 'python3 scripts/montage.py --test_list=dataset/Sony_test_list.txt', AS_WRITTEN,
     'wrote 3 montages'),
    ('session', 'python3 scripts/quality_table.py --test_list=dataset/Sony_test_list.txt',
     AS_WRITTEN, 'network (test_Sony.py)'),
    ('session', 'python3 eval.py', AS_WRITTEN, 'average ssim:'),
    ('session', 'python3 eval.py --ssim=matlab', AS_WRITTEN, 'average ssim matlab:'),
    ('session', 'python3 eval.py --ssim=all --exclude', AS_WRITTEN, 'average psnr:'),
    ('session', 'python3 test_Sony.py --test_list=dataset/Sony_test_list.txt --all_pairs '
                '--tile=128', AS_WRITTEN, 'tested 3 pairs, skipped 3'),
    ('session', 'python3 scripts/enhance.py --auto_ratio --out_dir=result_Sony/enhanced '
                'dataset/Sony/short/10001_00_0.033s.dng', AS_WRITTEN, None),
    ('session', 'python3 scripts/enhance.py --auto_ratio --out_dir=result_Sony/enhanced '
                'dataset/Sony/short/10002_00_0.1s.dng', AS_WRITTEN, None),
    ('session', 'python3 scripts/export_model.py --checkpoint_dir=checkpoint/Sony/ '
                '--out_dir=export --formats=pb,savedmodel', AS_WRITTEN, 'exported pb, savedmodel'),
    ('session', 'python3 scripts/export_model.py --checkpoint_dir=checkpoint/Sony/ '
                '--out_dir=export', AS_WRITTEN, 'exported pb, savedmodel, onnx'),
    ('session', 'python3 scripts/enhance.py --model=export/sid.pb --auto_ratio '
                '--out_dir=result_Sony/enhanced_pb dataset/Sony/short/10001_00_0.033s.dng',
     AS_WRITTEN, None),
    ('session', 'python3 scripts/export_model.py --checkpoint_dir=checkpoint/Sony/ '
                '--out_dir=export_atc --height=1424 --width=2128 --formats=pb',
     '{cmd} --height=64 --width=96', 'exported pb'),
    ('session', 'python3 train_Sony.py --help', AS_WRITTEN, '--checkpoint_every'),
    ('session', 'python3 train_Sony.py --train_list=dataset/Sony_train_list.txt '
                '--val_list=dataset/Sony_val_list.txt --ps=128 --epochs=20',
     '{cmd} --epochs=4', 'trained to epoch 4'),
    ('session', 'python3 test_Sony.py --checkpoint_dir=checkpoint/Sony/best/ '
                '--test_list=dataset/Sony_test_list.txt', AS_WRITTEN, 'tested 3 pairs'),
    ('session', 'python3 scripts/build_cache.py --lists=dataset/Sony_train_list.txt', AS_WRITTEN,
     None),
    ('session', 'python3 scripts/make_lists.py --data_dir=dataset', AS_WRITTEN, 'pairs'),
    ('session', 'bash scripts/modelzoo/train_full_1p.sh --data_path=./dataset',
     '{cmd} --ps=128 --train_epochs=1', 'TrainAccuracy'),
    ('session', 'bash scripts/modelzoo/train_performance_1p.sh --data_path=./dataset',
     '{cmd} --ps=128 --train_epochs=1', 'ActualFPS'),
    # The Fuji X-T2 on generated X-Trans raws.
    ('fuji', 'python3 scripts/make_dataset.py --camera=fuji',
     '{cmd} --train_scenes=2 --test_scenes=1 --val_scenes=1 --bursts=1', None),
    ('fuji', 'python3 train_Fuji.py --train_list=dataset/Fuji_train_list.txt '
             '--val_list=dataset/Fuji_val_list.txt --ps=128 --epochs=20',
     '{cmd} --epochs=1', 'trained to epoch 1'),
    ('fuji', 'python3 test_Fuji.py --test_list=dataset/Fuji_test_list.txt', AS_WRITTEN,
     'tested 1 pairs'),
    ('fuji', 'python3 eval.py --camera=Fuji --ssim=matlab', AS_WRITTEN, 'average ssim matlab:'),
    ('fuji', 'python3 scripts/export_model.py --camera=Fuji --out_dir=export_fuji '
             '--formats=pb,savedmodel', AS_WRITTEN, 'exported pb, savedmodel'),
    # docs/data.md's generators, into the scratch folder.
    ('data', 'python3 scripts/make_dataset.py --isos=800,1600,3200 --ratios=250,300 '
             '--data_dir=/tmp/dark',
     '{cmd} --train_scenes=1 --test_scenes=1 --val_scenes=1 --bursts=1', None),
    ('data', 'python3 scripts/make_dataset.py --scenes=shapes --height=2848 --width=4256 '
             '--data_dir=/tmp/sid_full',
     '{cmd} --height=256 --width=384 --train_scenes=1 --test_scenes=1 --val_scenes=1 --bursts=1',
     None),
    ('data', 'python3 scripts/make_dataset.py --camera=fuji --data_dir=/tmp/fuji',
     '{cmd} --train_scenes=1 --test_scenes=1 --val_scenes=1 --bursts=1', None),
    ('data', 'python3 scripts/make_dataset.py --camera=bayer --data_dir=/tmp/bayer',
     '{cmd} --train_scenes=1 --test_scenes=1 --val_scenes=1 --bursts=1', None),
)

REAL_SONY = 'the real SID Sony set in dataset/Sony (25 GB download)'
REAL_FUJI = 'the real SID Fuji set in dataset/Fuji'
ASCEND = 'the Ascend image (Python 3.7, CANN, an Ascend 910)'
OWN_RAWS = "your own camera's raw files"
BENCHMARK = 'benchmark: minutes to hours of CPU and gigabytes of full-size data'
HOROVOD = ('Horovod (built by scripts/install_horovod.sh; none on TF >= 2.16) and several GPUs '
           'or hosts')
SUITE = 'the test suite itself (minutes per runtime; this test is part of it)'

NOT_OFFLINE = {
    'bash scripts/run_tests.sh': SUITE,
    'bash scripts/run_tests.sh --all': SUITE,
    'bash scripts/run_tests.sh --only=tf1.15 -k network': SUITE + '; needs python3.7',
    'SID_CRASH_TRIALS=20 bash scripts/run_tests.sh --all -k kill_9_at_random': SUITE,
    'python3 -m pytest -q tests -k network':
        SUITE + '; needs the test tools of requirements-dev.txt in the venv',
    'bash scripts/install_horovod.sh': 'builds Horovod from the network (minutes)',
    'bash scripts/make_venv.sh --dev': 'installs requirements-dev.txt from the network (this '
                                       'test runs in a venv that has them)',
    'horovodrun -np 2 -H localhost:2 --gloo python3 train_Sony.py --distributed=horovod':
        HOROVOD + '; ' + REAL_SONY,
    'bash scripts/modelzoo/train_horovod.sh --data_path=./dataset --np=4': HOROVOD,
    'bash scripts/modelzoo/train_horovod.sh --data_path=./dataset --np=8 --hosts=a:4,b:4': HOROVOD,
    'bash scripts/modelzoo/train_full_8p.sh --data_path=./dataset '
    '--rank_table=scripts/modelzoo/rank_table_8p.json': ASCEND + ' x 8 (HCCL)',
    'bash scripts/modelzoo/train_full_8p.sh --data_path=./dataset '
    '--rank_table=scripts/modelzoo/rank_table_8p.json --train_epochs=2': ASCEND + ' x 8 (HCCL)',
    'bash scripts/modelzoo/train_full_1p.sh --data_path=./dataset --camera=fuji':
        REAL_FUJI + '; days of training (the Fuji launcher runs here on generated raws in '
        'tests/test_modelzoo_scripts.py)',
    'ASCEND_GLOBAL_LOG_LEVEL=1 ASCEND_SLOG_PRINT_TO_STDOUT=1 bash '
    'scripts/modelzoo/train_performance_1p.sh --data_path=./dataset': ASCEND,
    'python3.7 scripts/install_ascend.py': ASCEND + '; installs wheels from the network',
    'python3.7 train_Sony.py --epochs=1001': ASCEND + '; ' + REAL_SONY,
    'python3.7 test_Sony.py': ASCEND + '; ' + REAL_SONY,
    'python3.7 eval.py': ASCEND + "; scores test_Sony.py's outputs on the real set",
    'python3.7 scripts/make_dataset.py --height=1024 --width=1536': ASCEND,
    'python3.7 test_Sony.py --device=npu --test_list=dataset/Sony_test_list.txt': ASCEND,
    'atc --model=export_atc/sid.pb --framework=3 --output=sid --soc_version=Ascend310 '
    '--input_shape="input:1,1424,2128,4"': "CANN's atc compiler",
    'python3 train_Sony.py --epochs=1001': REAL_SONY + '; days on a CPU',
    'python3 train_Sony.py': REAL_SONY + '; days on a CPU',
    'python3 train_Sony.py --finetune_from=checkpoint/Sony_released/ '
    '--checkpoint_dir=checkpoint/Sony_ft/': REAL_SONY + "; the authors' released checkpoint",
    'python3 test_Sony.py': REAL_SONY,
    'python3 scripts/montage.py': REAL_SONY + " (test_Sony.py's outputs on it)",
    'python3 scripts/check_dataset.py --data_dir=dataset': REAL_SONY,
    'python3 scripts/check_dataset.py --data_dir=dataset --camera=Fuji': REAL_FUJI,
    'python3 scripts/build_cache.py --data_dir=./dataset --lists=./Sony_train_list.txt':
        REAL_SONY,
    'python3 scripts/build_cache.py --data_dir=./dataset --camera=Fuji': REAL_FUJI,
    'python3 train_Fuji.py --epochs=1001': REAL_FUJI + '; days on a CPU',
    'python3 test_Fuji.py': REAL_FUJI,
    'python3 scripts/enhance.py --ratio=100 --tiff --out_dir=enhanced DSC01234.ARW': OWN_RAWS,
    'python3 scripts/enhance.py --checkpoint_dir=checkpoint/Sony/ --ratio=100 --out_dir=out '
    '--tiff *.NEF': OWN_RAWS,
    'python3 scripts/enhance.py --auto_ratio DSCF0042.RAF': OWN_RAWS + ' (X-Trans)',
    'python3 scripts/make_lists.py --data_dir=mine --list_dir=mine': OWN_RAWS,
    'python3 scripts/check_dataset.py --camera=bayer --data_dir=mine mine/Sony_*_list.txt':
        OWN_RAWS,
    'python3 train_Sony.py --camera=bayer --data_dir=mine --train_list=mine/Sony_train_list.txt '
    '--finetune_from=checkpoint/Sony/ --checkpoint_dir=checkpoint/mine/ --epochs=200': OWN_RAWS,
    'python3 test_Sony.py --camera=bayer --data_dir=mine --test_list=mine/Sony_test_list.txt '
    '--checkpoint_dir=checkpoint/mine/ --result_dir=result_mine/': OWN_RAWS,
    'python3 eval.py --camera=bayer --result_dir=result_mine/': OWN_RAWS,
    'python3 scripts/enhance.py --checkpoint_dir=checkpoint/mine/ --auto_ratio photo.NEF':
        OWN_RAWS,
    'python3 scripts/make_dataset.py --camera=fuji --height=4032 --width=6032 '
    '--data_dir=/tmp/fuji_full': BENCHMARK,
    'python3 scripts/make_dataset.py --data_dir=/tmp/train_bench_full/data '
    '--list_dir=/tmp/train_bench_full/data --height=2848 --width=4256 --train_scenes=16 '
    '--test_scenes=0 --val_scenes=0 --bursts=1': BENCHMARK,
    'python3 scripts/build_cache.py --data_dir=/tmp/train_bench_full/data '
    '--lists=/tmp/train_bench_full/data/Sony_train_list.txt': BENCHMARK,
    'python3 scripts/build_cache.py --data_dir=/tmp/sid_full '
    '--lists=/tmp/sid_full/Sony_train_list.txt': BENCHMARK,
    'python3 scripts/build_cache.py --data_dir=/tmp/sid_full '
    '--lists=/tmp/sid_full/Sony_train_list.txt --noverify': BENCHMARK,
    'python3 scripts/bench/bench_input_pipeline.py': BENCHMARK,
    'python3 scripts/bench/bench_input_pipeline.py --sections=e --crop_threads=1,2': BENCHMARK,
    'python3 scripts/bench/smoke_train.py --work_dir=/tmp/sid_smoke': BENCHMARK,
    'python3 scripts/bench/bench_inference.py --work_dir=/tmp/sid_bench --tile=1072 --tile=512':
        BENCHMARK,
    'python3 scripts/bench/bench_inference.py --only=test --tile=1072 --tile=512 --repeats=2':
        BENCHMARK,
    'python3 scripts/bench/bench_inference.py --receptive_field': BENCHMARK,
    'python3 scripts/bench/bench_inference.py --camera=Fuji --pairs=1 --tile=1072 --tile=512 '
    '--only=test': BENCHMARK,
    'python3 scripts/bench/bench_scaling.py': BENCHMARK + '; ' + HOROVOD,
    'python3 scripts/bench/bench_scaling.py --sections=validation --val_scenes=4 --height=1424 '
    '--width=2128 --train_scenes=2': BENCHMARK + '; ' + HOROVOD,
}

FENCE_RE = re.compile(r'^(\s*)```\s*([\w+-]*)\s*$')
# Lines that look like a command a user would type (outside bash blocks they escape this test).
COMMAND_LIKE_RE = re.compile(r'^\s*(python3(\.\d+)?|bash|source|horovodrun|atc)\s')
LINK_RE = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def strip_comment(line):
    """`line` without a shell comment: a # at the start or after a blank, outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in '\'"':
            quote = c
        elif c == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def read_document(name):
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
        return f.read().splitlines()


def documented_commands():
    """(document, line number, command) for every command of every bash block, and the problems
    found on the way (an unclosed block, a command-like line outside a bash block)."""
    found, problems = [], []
    for name in DOCUMENTS:
        language, pending, start, opened = None, [], None, None
        for number, line in enumerate(read_document(name), 1):
            fence = FENCE_RE.match(line)
            if fence:
                if language is None:
                    language, opened = fence.group(2) or 'plain', number
                else:
                    if pending:
                        problems.append('%s:%d: a continued line ends its block' % (name, start))
                    language, pending, start = None, [], None
                continue
            if language != 'bash':
                if language is not None and COMMAND_LIKE_RE.match(line):
                    problems.append('%s:%d: a command outside a bash block (```%s): %s'
                                    % (name, number, language, line.strip()))
                continue
            text = strip_comment(line).strip()
            if not text and not pending:
                continue
            if start is None:
                start = number
            continued = text.endswith('\\')
            pending.append(text[:-1].strip() if continued else text)
            if not continued:
                found.append((name, start, ' '.join(p for p in pending if p)))
                pending, start = [], None
        if language is not None:
            problems.append('%s:%d: a code block that is never closed' % (name, opened))
    return found, problems


def offline_copies():
    """The copies' names, in the order of their first command."""
    names = []
    for copy, _, _, _ in OFFLINE:
        if copy not in names:
            names.append(copy)
    return names


def test_every_documented_command_is_listed():
    found, problems = documented_commands()
    assert not problems, '\n'.join(problems)
    offline = set(command for _, command, _, _ in OFFLINE)
    both = sorted(offline & set(NOT_OFFLINE))
    assert not both, 'listed both offline and not offline: %s' % both
    unlisted = ['%s:%d: %s' % (name, number, command) for name, number, command in found
                if command not in offline and command not in NOT_OFFLINE]
    assert not unlisted, ('documented commands this test neither runs nor excuses; add each to '
                          'OFFLINE (how to run it small) or NOT_OFFLINE (why not):\n'
                          + '\n'.join(unlisted))
    documented = set(command for _, _, command in found)
    stale = sorted((offline | set(NOT_OFFLINE)) - documented)
    assert not stale, 'listed here but in no bash block of the documents: %s' % stale
    assert len(found) > 50  # the parser sees the blocks (a regression would find none)


def heading_anchors(name):
    """GitHub's anchors of a Markdown file's headings."""
    anchors, fenced = set(), False
    for line in read_document(name):
        if FENCE_RE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith('#'):
            title = line.lstrip('#').strip().lower()
            anchors.add(re.sub(r'[^\w\- ]', '', title).replace(' ', '-'))
    return anchors


def test_local_links_point_to_files_and_headings_that_exist():
    broken = []
    for name in DOCUMENTS:
        for number, line in enumerate(read_document(name), 1):
            for target in LINK_RE.findall(line):
                if re.match(r'^[a-z]+:', target):  # http(s), mailto
                    continue
                path, _, anchor = target.partition('#')
                resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(name), path)) \
                    if path else os.path.join(ROOT, name)
                if not resolved.startswith(ROOT + os.sep) or not os.path.exists(resolved):
                    broken.append('%s:%d: %s: no such file in the project' % (name, number, target))
                elif anchor and resolved.endswith('.md') and anchor not in heading_anchors(
                        os.path.relpath(resolved, ROOT)):
                    broken.append('%s:%d: %s: no such heading' % (name, number, target))
    assert not broken, '\n'.join(broken)


def project_files():
    """The files a fresh clone would have, as paths relative to ROOT (tracked and new files of
    this working tree; without git, everything but the usual outputs)."""
    try:
        out = subprocess.check_output(['git', 'ls-files', '-z', '--cached', '--others',
                                       '--exclude-standard'], cwd=ROOT, stderr=subprocess.DEVNULL)
        return [p for p in out.decode('utf-8').split('\0') if p]
    except (OSError, subprocess.CalledProcessError):
        skip = ('.git', '.venv', 'dataset', 'checkpoint', 'result_Sony', 'result_Fuji', 'output',
                '__pycache__', '.pytest_cache')
        files = []
        for folder, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in skip]
            files += [os.path.relpath(os.path.join(folder, n), ROOT) for n in names]
        return files + [os.path.join(d, 'README.md') for d in skip[2:5]]


def make_copy(dest):
    """A copy of the project at `dest` whose make_venv.sh gives the interpreter of this test a
    virtualenv-like folder, .venv/py3.X, with bin/python, bin/python3 and bin/activate."""
    for rel in project_files():
        source = os.path.join(ROOT, rel)
        if os.path.isfile(source):
            target = os.path.join(dest, rel)
            if not os.path.isdir(os.path.dirname(target)):
                os.makedirs(os.path.dirname(target))
            shutil.copy2(source, target)
    venv = os.path.join(dest, '.venv', 'py%d.%d' % sys.version_info[:2])
    os.makedirs(os.path.join(venv, 'bin'))
    for name in ('python', 'python3'):
        write_executable(os.path.join(venv, 'bin', name),
                         '#!/bin/sh\nexec "%s" "$@"\n' % sys.executable)
    with open(os.path.join(venv, 'bin', 'activate'), 'w') as f:
        f.write('# the activation of a virtualenv, for the interpreter tests/test_docs_commands.py '
                'runs with\n'
                'VIRTUAL_ENV="%s"; export VIRTUAL_ENV\n'
                '_OLD_VIRTUAL_PATH="$PATH"\n'
                'PATH="$VIRTUAL_ENV/bin:$PATH"; export PATH\n'
                'deactivate () { PATH="$_OLD_VIRTUAL_PATH"; export PATH; unset VIRTUAL_ENV; '
                'unset -f deactivate; }\n' % venv)
    write_executable(os.path.join(dest, 'scripts', 'make_venv.sh'),
                     '#!/usr/bin/env bash\n# tests/test_docs_commands.py: the venv of the test\'s '
                     'own interpreter (the real script would download packages)\n'
                     'echo "%s/bin/python"\n' % venv)


def write_executable(path, text):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def command_env():
    """The user's environment, without what would point the commands elsewhere: this process's
    module path, an interpreter choice meant for run_tests.sh, TensorFlow's log level (the scripts
    keep quiet themselves)."""
    env = dict(os.environ)
    for name in ('PYTHONPATH', 'PYTHON', 'TF_CPP_MIN_LOG_LEVEL', 'VIRTUAL_ENV'):
        env.pop(name, None)
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    return env


def where_documented(command):
    found, _ = documented_commands()
    return ', '.join('%s:%d' % (name, number) for name, number, c in found if c == command)


@pytest.mark.parametrize('copy', offline_copies())
def test_offline_commands_run_as_documented(copy, tmp_path):
    """Each copy's commands, in order, in one temporary copy of the project."""
    project, scratch = tmp_path / 'project', tmp_path / 'scratch'
    os.makedirs(str(scratch))
    make_copy(str(project))
    env = command_env()
    timings = []
    for name, documented, run, expected in OFFLINE:
        if name != copy:
            continue
        command = run.format(cmd=documented).replace('/tmp/', str(scratch) + '/')
        script = 'set -eo pipefail\nsource scripts/activate.sh 2>/dev/null\n%s\n' % command
        start = time.time()
        try:
            proc = subprocess.run(['bash', '-c', script], cwd=str(project), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail('%s (%s) did not end within %d s' % (command, where_documented(documented),
                                                             COMMAND_TIMEOUT))
        timings.append('%5.1f s  %s' % (time.time() - start, command))
        tail = '\n'.join(proc.stdout.splitlines()[-40:])
        assert proc.returncode == 0, '%s (%s) failed with exit status %d:\n%s' % (
            command, where_documented(documented), proc.returncode, tail)
        assert expected is None or expected in proc.stdout, (
            '%s (%s): its output lacks %r:\n%s' % (command, where_documented(documented),
                                                   expected, tail))
    print('\n'.join(timings))  # shown with pytest -s: where the minutes go
    for folder in (project, scratch):  # hundreds of MB of data and models; kept on a failure
        shutil.rmtree(str(folder))
