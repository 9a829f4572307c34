#!/usr/bin/env bash
# Create, or reuse when complete, the project virtualenv of one Python and print its interpreter.
#
#   bash scripts/make_venv.sh [--dev] [PYTHON]     # PYTHON: python3 (default), python3.7, a path
#       -> prints .venv/py<X.Y>/bin/python on stdout; progress goes to stderr
#
# Why a virtualenv: Debian 12+ and Ubuntu 24.04 refuse pip into the system Python (PEP 668), and
# each runtime needs its own stack (TF 1.15 on 3.7, TF 2.15 on 3.9-3.11, a current TF on 3.12+).
# One venv per Python minor version under .venv/ (git-ignored; SID_VENV_DIR moves it). A venv is
# reused only when its stamp - the exact Python and a hash of the requirement files - matches;
# a changed requirements.txt rebuilds it from scratch, so nothing stale is ever mixed in.
# --dev also installs requirements-dev.txt (the test tools).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dev=0
python=python3
for arg in "$@"; do
    case $arg in
        --dev) dev=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        -*) echo "make_venv.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
        *) python=$arg ;;
    esac
done

command -v "$python" >/dev/null 2>&1 || { echo "make_venv.sh: no Python interpreter '$python' on PATH" >&2; exit 1; }
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! "$python" -c 'import sys; sys.exit(not ((3, 7) <= sys.version_info[:2] <= (3, 13)))'; then
    echo "make_venv.sh: $python is Python $version; the project supports 3.7 to 3.13" >&2
    exit 1
fi
dir=${SID_VENV_DIR:-$root/.venv}/py$version
vpy=$dir/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

stamp_of() {  # the interpreter's full version + the requirement files that shape the venv
    { "$python" -c 'import sys; print(sys.version)'; cat "$@"; } | sha256sum | cut -d' ' -f1
}
# On 3.7 (the Ascend image's Python) the Ascend pins constrain the stack: the TF 1.15 runtime
# then tests the versions scripts/install_ascend.py installs there.
constraints=("$root/requirements.txt")
[[ $version == 3.7 ]] && constraints+=("$root/requirements-ascend.txt")
runtime_stamp=$(stamp_of "${constraints[@]}")
dev_stamp=$(stamp_of "${constraints[@]}" "$root/requirements-dev.txt")
constraint_args=()
for file in "${constraints[@]:1}"; do constraint_args+=(-c "$file"); done

if [[ ! -x $vpy || "$(cat "$dir/.stamp-runtime" 2>/dev/null)" != "$runtime_stamp" ]]; then
    echo "creating $dir for $("$python" -c 'import sys; print(sys.executable)') (Python $version)" >&2
    rm -rf "$dir"
    if ! "$python" -m venv "$dir" >&2; then
        rm -rf "$dir"
        echo "make_venv.sh: '$python -m venv' failed; on Debian/Ubuntu: apt-get install python$version-venv" >&2
        exit 1
    fi
    "$vpy" -m pip install -q --upgrade pip >&2
    if ! "$vpy" -m pip install -q -r "$root/requirements.txt" \
            ${constraint_args[@]+"${constraint_args[@]}"} >&2; then
        echo "make_venv.sh: installing requirements.txt into $dir failed (see pip's message above)" >&2
        exit 1
    fi
    echo "$runtime_stamp" > "$dir/.stamp-runtime"   # written last: a half-built venv is never reused
fi
if [[ $dev == 1 && "$(cat "$dir/.stamp-dev" 2>/dev/null)" != "$dev_stamp" ]]; then
    echo "installing the test tools (requirements-dev.txt) into $dir" >&2
    # requirements.txt as constraints: the test tools never move the runtime's own pins
    "$vpy" -m pip install -q -r "$root/requirements-dev.txt" -c "$root/requirements.txt" \
        ${constraint_args[@]+"${constraint_args[@]}"} >&2
    echo "$dev_stamp" > "$dir/.stamp-dev"
fi
echo "$vpy"
