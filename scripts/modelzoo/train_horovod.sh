#!/usr/bin/env bash
# Data-parallel training on GPUs or CPUs with Horovod (one process per GPU, pinned to its local
# rank), then test + eval on the chief and the ModelZoo summary.
#
#   bash scripts/modelzoo/train_horovod.sh --data_path=./dataset --np=4                   # 4 GPUs here
#   bash scripts/modelzoo/train_horovod.sh --data_path=./dataset --np=8 --hosts=a:4,b:4   # two servers
#   bash scripts/modelzoo/train_horovod.sh --data_path=./dataset --np=2 --mode=performance
#
# Options: see scripts/modelzoo/modelzoo_common.sh, plus
#   --np=N              number of processes (default 2)
#   --hosts=H           horovodrun -H (default localhost:N)
#   --mode=M            full (train 1001 epochs, test, eval; default) or performance (2 epochs
#                       into a scratch checkpoint folder, FPS only)
#   --mpi               launch through MPI instead of Gloo (Horovod must be built with MPI)
# Needs Horovod (scripts/install_horovod.sh). Logs: <output_path>/0/train_0.log (all ranks,
# prefixed [rank]<stdout>:), only rank 0 prints the parsed lines and writes checkpoints.
set -euo pipefail
# shellcheck source=modelzoo_common.sh
source "$(dirname "$0")/modelzoo_common.sh"

np=2 hosts='' mode=full controller=--gloo
horovod_options() {
    case $1 in
        --np=*) np=${1#*=} ;;
        --hosts=*) hosts=${1#*=} ;;
        --mode=full|--mode=performance) mode=${1#*=} ;;
        --mpi) controller=--mpi ;;
        *) return 1 ;;
    esac
}
parse_args horovod_options "$@"
hosts=${hosts:-localhost:$np}
if [[ -z $epochs ]]; then
    epochs=1001
    [[ $mode == performance ]] && epochs=2
fi
dir=$output_path/0
mkdir -p "$dir"
suffix=acc
if [[ $mode == performance ]]; then
    suffix=perf
    use_scratch_checkpoint
fi
case_name=${NETWORK}_bs${batch_size}_${np}p_horovod_${suffix}
mapfile -t args < <(train_args)

start=$(date +%s)
run_logged "$dir/train_0.log" horovodrun -np "$np" -H "$hosts" "$controller" \
    "$PYTHON" "$TRAIN_SCRIPT" "${args[@]}" --device="$device" --distributed=horovod
eval_log=
if [[ $mode == full ]]; then
    test_and_eval "$dir"
    eval_log=$dir/eval.log
fi
end=$(date +%s)
write_summary "$dir" "$dir/train_0.log" "$np" "$case_name" $((end - start)) "$eval_log"
