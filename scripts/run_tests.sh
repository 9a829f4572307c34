#!/usr/bin/env bash
# The test command: installs what the suite needs on a fresh machine, then runs it.
#   bash scripts/run_tests.sh            (extra arguments go to pytest, e.g. -k network)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
bash scripts/install_horovod.sh   # Horovod 0.28.1 for the real 2-worker distributed test
python3 -m pytest -q tests "$@"
