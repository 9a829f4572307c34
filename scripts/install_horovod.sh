#!/usr/bin/env bash
# Build and install Horovod 0.28.1 for the installed TensorFlow (CPU/GPU data parallelism).
#
# Why a script: Horovod compiles against the TensorFlow it finds, so it must be built with
# --no-build-isolation (a newer pip otherwise builds in a clean env that has no TensorFlow), with
# the framework switches below, and against TF < 2.16 (Horovod issue #4290). The build takes
# 2-3 minutes on 2 cores, so the wheel is cached per Python and TensorFlow version and reused.
#
#   scripts/install_horovod.sh                 # no-op when horovod.tensorflow already imports
#   scripts/install_horovod.sh --force         # rebuild/reinstall (e.g. after a TF upgrade)
#   scripts/install_horovod.sh --no_cache      # build without keeping the wheel
#   PYTHON=python3.11 scripts/install_horovod.sh --cache_dir=/ci/cache/wheels
set -euo pipefail

HOROVOD_VERSION=0.28.1
TF_TOO_NEW='(2, 16)'     # first TensorFlow release Horovod 0.28.1 cannot build against
PYTHON=${PYTHON:-python3}
cache_dir=${SID_WHEEL_CACHE:-$HOME/.cache/sid-wheels}
force=0

for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        --no_cache) cache_dir= ;;
        --cache_dir=*) cache_dir=${arg#*=} ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install_horovod.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done

if [[ $force == 0 ]] && "$PYTHON" -c 'import horovod.tensorflow' 2>/dev/null; then
    echo "horovod.tensorflow already imports ($("$PYTHON" -c 'import horovod; print(horovod.__version__)')); nothing to do"
    exit 0
fi

tf_version=$("$PYTHON" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null) || {
    echo "install_horovod.sh: TensorFlow is not importable with $PYTHON; pip install -r requirements.txt first" >&2
    exit 1
}
if ! "$PYTHON" -c "import sys; sys.exit(tuple(map(int, '$tf_version'.split('.')[:2])) >= $TF_TOO_NEW)"; then
    echo "install_horovod.sh: TensorFlow $tf_version is too new for Horovod $HOROVOD_VERSION (Horovod issue #4290); use tensorflow-cpu==2.15.1" >&2
    exit 1
fi
if ! command -v g++ >/dev/null || ! command -v make >/dev/null; then
    echo "install_horovod.sh: g++ and make are needed to build Horovod (apt-get install build-essential)" >&2
    exit 1
fi
command -v cmake >/dev/null || "$PYTHON" -m pip install --quiet cmake

export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
       HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1
# A wheel is only valid for the Python and TensorFlow it was compiled against.
py_tag=$("$PYTHON" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
if [[ -n $cache_dir ]]; then
    wheel_dir=$cache_dir/horovod-$HOROVOD_VERSION-$py_tag-tf$tf_version
else
    wheel_dir=$(mktemp -d)
    trap 'rm -rf "$wheel_dir"' EXIT
fi
mkdir -p "$wheel_dir"
wheel=$(ls "$wheel_dir"/horovod-"$HOROVOD_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z $wheel ]]; then
    echo "building horovod==$HOROVOD_VERSION against tensorflow $tf_version in $wheel_dir (2-3 minutes)"
    "$PYTHON" -m pip wheel --no-build-isolation --no-cache-dir --no-deps \
        --wheel-dir "$wheel_dir" "horovod==$HOROVOD_VERSION"
    wheel=$(ls "$wheel_dir"/horovod-"$HOROVOD_VERSION"-*.whl | head -n 1)
else
    echo "using cached $wheel"
fi
if "$PYTHON" -m pip show --quiet horovod >/dev/null 2>&1; then
    "$PYTHON" -m pip install --force-reinstall --no-deps "$wheel"   # replace the build only
else
    "$PYTHON" -m pip install "$wheel"   # with its pure-Python dependencies
fi

"$PYTHON" -c 'import horovod.tensorflow as hvd; print("horovod", __import__("horovod").__version__, "gloo built:", hvd.gloo_built())'
