# shellcheck shell=bash
# Source me from the project root: `source scripts/activate.sh` puts the project's virtualenv for
# python3 (or $PYTHON) first on PATH, creating it when missing (scripts/make_venv.sh), so that the
# README's `python3 train_Sony.py ...` commands find TensorFlow, rawpy and the rest. `deactivate`
# undoes it. On the Ascend image there is no venv: scripts/install_ascend.py installs into it.
_sid_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
if _sid_python=$(bash "$_sid_root/scripts/make_venv.sh" "${PYTHON:-python3}"); then
    # shellcheck source=/dev/null
    source "$(dirname "$_sid_python")/activate"
    echo "using $(command -v python3) ($(python3 --version 2>&1)); deactivate to leave it" >&2
fi
unset _sid_root _sid_python
