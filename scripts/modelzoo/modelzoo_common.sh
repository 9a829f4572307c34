# shellcheck shell=bash
# Shared by the ModelZoo launchers (train_full_1p.sh, train_performance_1p.sh, train_full_8p.sh,
# train_horovod.sh); sourced, never run. One option parser and one summary step, so the four
# scripts cannot drift apart.
#
# Options (ModelZoo names where ModelZoo has one):
#   --camera=C           sony (default) or fuji: train_Sony.py / test_Sony.py or train_Fuji.py /
#                        test_Fuji.py, the camera's lists and folder, CaseName SID_Sony_... or
#                        SID_Fuji_...
#   --data_path=DIR      dataset root holding Sony/{short,long} (Fuji/ with --camera=fuji; required)
#   --list_path=DIR      folder with Sony_{train,test}_list.txt (Fuji_...) (default: data_path if
#                        it has them, else the repository root)
#   --output_path=DIR    logs, checkpoints, results and the summary (default: <repo>/output)
#   --cache_path=DIR     decoded-raw cache (default: train_Sony.py's <data_path>/cache)
#   --train_epochs=N     epochs (alias --epochs)
#   --batch_size=N       patches per step and rank (default 1, the paper's)
#   --ps=N               packed patch size (default 512, the paper's)
#   --precision=MODE     auto | mixed | fp32, same meaning as the Python scripts' --precision
#   --precision_mode=M   Ascend precision_mode with loss scaling (allow_mix_precision,
#                        allow_fp32_to_fp16, force_fp16); must_keep_origin_dtype is refused: the
#                        910 computes Conv2D in float16 only (--precision=fp32 maps to
#                        allow_fp32_to_fp16 without loss scaling)
#   --device=D           auto | npu | gpu | cpu
#   --ckpt_path=PATH     fine-tune from these U-Net weights instead of a fresh start
#   --warmup_steps=N     steps left out of the FPS average (default 5)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CAMERA=Sony  # the camera profile's name (camera.py): Python scripts, lists and data folder
NETWORK=SID_$CAMERA
PYTHON=${PYTHON:-python3}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

data_path='' list_path='' output_path=$ROOT/output cache_path='' epochs='' batch_size=1 ps=512
precision=auto npu_precision_mode='' device=auto ckpt_path='' warmup_steps=5

# parse_args EXTRA_HANDLER "$@": options above; EXTRA_HANDLER gets the rest, returns 1 if unknown.
parse_args() {
    local extra=$1 arg value
    shift
    for arg in "$@"; do
        case $arg in
            --camera=*)
                value=${arg#*=}
                case ${value,,} in
                    sony) CAMERA=Sony ;;
                    fuji) CAMERA=Fuji ;;
                    *) echo "$(basename "$0"): --camera must be sony or fuji (got '${arg#*=}')" >&2
                       exit 2 ;;
                esac
                NETWORK=SID_$CAMERA ;;
            --data_path=*) data_path=${arg#*=} ;;
            --list_path=*) list_path=${arg#*=} ;;
            --output_path=*) output_path=${arg#*=} ;;
            --cache_path=*) cache_path=${arg#*=} ;;
            --train_epochs=*|--epochs=*) epochs=${arg#*=} ;;
            --batch_size=*) batch_size=${arg#*=} ;;
            --ps=*) ps=${arg#*=} ;;
            --precision=*) precision=${arg#*=} ;;
            --precision_mode=*)
                npu_precision_mode=${arg#*=}
                if [[ $npu_precision_mode == must_keep_origin_dtype ]]; then
                    echo "$(basename "$0"): --precision_mode=must_keep_origin_dtype cannot" \
                         "compile this U-Net on Ascend 910 (its cube unit has Conv2D in float16" \
                         "only); --precision=fp32 runs allow_fp32_to_fp16" >&2
                    exit 2
                fi
                precision=mixed ;;
            --device=*) device=${arg#*=} ;;
            --ckpt_path=*) ckpt_path=${arg#*=} ;;
            --warmup_steps=*) warmup_steps=${arg#*=} ;;
            *) "$extra" "$arg" || { echo "$(basename "$0"): unknown option $arg" >&2; exit 2; } ;;
        esac
    done
    if [[ -z $data_path || ! -d $data_path/$CAMERA ]]; then
        echo "$(basename "$0"): --data_path must be the dataset root holding $CAMERA/" \
             "(got '${data_path}')" >&2
        exit 2
    fi
    if [[ -z $list_path ]]; then
        list_path=$ROOT
        [[ -f $data_path/${CAMERA}_train_list.txt ]] && list_path=$data_path
    fi
    TRAIN_SCRIPT=$ROOT/train_$CAMERA.py TEST_SCRIPT=$ROOT/test_$CAMERA.py
    mkdir -p "$output_path"
    output_path=$(cd "$output_path" && pwd)
    checkpoint_dir=$output_path/checkpoint
    result_dir=$output_path/result
}

no_extra_options() { return 1; }

# A measurement must train, never resume a finished run: a scratch checkpoint folder.
use_scratch_checkpoint() {
    checkpoint_dir=$(mktemp -d "$output_path/perf_checkpoint.XXXXXX")
    trap 'rm -rf "$checkpoint_dir"' EXIT
}

# The train_Sony.py / train_Fuji.py arguments every launcher passes (the backend and device come
# on top).
train_args() {
    local args=(--data_dir="$data_path" --train_list="$list_path/${CAMERA}_train_list.txt"
                --checkpoint_dir="$checkpoint_dir" --result_dir="$result_dir"
                --batch_size="$batch_size" --ps="$ps" --precision="$precision")
    [[ -n $epochs ]] && args+=(--epochs="$epochs")
    [[ -n $cache_path ]] && args+=(--cache_dir="$cache_path")
    [[ -n $npu_precision_mode ]] && args+=(--npu_precision_mode="$npu_precision_mode")
    [[ -n $ckpt_path ]] && args+=(--finetune_from="$ckpt_path")
    printf '%s\n' "${args[@]}"
}

# setup_one_device KIND: rank 0 of 1 on ASCEND_DEVICE_ID (default 0), no rank table, its log
# folder in $dir and the ModelZoo case name (KIND: acc or perf) in $case_name.
setup_one_device() {
    unset RANK_TABLE_FILE
    export RANK_SIZE=1 RANK_ID=0 ASCEND_DEVICE_ID=${ASCEND_DEVICE_ID:-0}
    dir=$output_path/$ASCEND_DEVICE_ID
    mkdir -p "$dir"
    case_name=${NETWORK}_bs${batch_size}_1p_$1
}

# train_one_device [ARG...]: train_Sony.py / train_Fuji.py on this device without distribution,
# logged to $dir/train_<device id>.log; ARGs go to the script.
train_one_device() {
    local args
    mapfile -t args < <(train_args)
    run_logged "$dir/train_$ASCEND_DEVICE_ID.log" "$PYTHON" "$TRAIN_SCRIPT" "${args[@]}" \
        --device="$device" --distributed=none "$@"
}

# run_logged LOG COMMAND...: run, output to LOG; on failure show the log's tail and stop.
run_logged() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "$(basename "$0"): failed: $* (last lines of $log below)" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

# test_and_eval DEVICE_DIR [DEVICE_ID]: full-resolution test of the last checkpoint on that one
# device (default ASCEND_DEVICE_ID, else 0), then PSNR/SSIM. They run in a one-device
# environment: an 8-device run's RANK_TABLE_FILE and RANK_SIZE would make GE set up HCCL for
# ranks that no longer exist.
test_and_eval() {
    local dir=$1 device_id=${2:-${ASCEND_DEVICE_ID:-0}}
    local one_device=(env -u RANK_TABLE_FILE RANK_SIZE=1 RANK_ID=0 ASCEND_DEVICE_ID="$device_id"
                      DEVICE_ID="$device_id")
    run_logged "$dir/test.log" "${one_device[@]}" "$PYTHON" "$TEST_SCRIPT" \
        --data_dir="$data_path" --test_list="$list_path/${CAMERA}_test_list.txt" \
        --checkpoint_dir="$checkpoint_dir" --result_dir="$result_dir" --device="$device" \
        --precision="$precision"
    run_logged "$dir/eval.log" "${one_device[@]}" "$PYTHON" "$ROOT/eval.py" \
        --result_dir="$result_dir"
}

# write_summary DEVICE_DIR TRAIN_LOG RANK_SIZE CASE_NAME E2E_SECONDS [EVAL_LOG]
write_summary() {
    local dir=$1 train_log=$2 rank_size=$3 case_name=$4 e2e=$5 eval_log=${6:-}
    local args=(--train_log="$train_log" --rank_size="$rank_size" --batch_size="$batch_size"
                --case_name="$case_name" --e2e_time="$e2e" --warmup_steps="$warmup_steps"
                --output="$dir/$case_name.log")
    [[ -n $eval_log ]] && args+=(--eval_log="$eval_log")
    "$PYTHON" "$ROOT/scripts/modelzoo/parse_log.py" "${args[@]}"
    echo "summary: $dir/$case_name.log" >&2
}
