#!/usr/bin/env bash
# The test command: on a fresh machine it makes the runtime's virtualenv (scripts/make_venv.sh),
# builds Horovod where it can, runs the suite and ends with one table. By default it tests the
# runtime of `python3` (TF 2.15 on 3.8-3.11, a current TF on 3.12/3.13) and says how long that
# takes; --all (and CI=true, where all three are required) also runs TF 1.15 on Python 3.7 and
# the other stack.
#   bash scripts/run_tests.sh                  (extra arguments go to pytest, e.g. -k network)
#   bash scripts/run_tests.sh --all            (the three runtimes, one after the other)
#   bash scripts/run_tests.sh --only=tf1.15    (one runtime: tf1.15, tf2.15 or current)
#   PYTHON=python3.13 bash scripts/run_tests.sh   (the interpreter that drives it; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" scripts/test_runtimes.py "$@"
