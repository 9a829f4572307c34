#!/usr/bin/env bash
# ModelZoo "full" run on one device: train, test at full resolution, evaluate, summarise.
#
#   bash scripts/train_full_1p.sh --data_path=./dataset [--train_epochs=1001] [options]
#
# Options: see scripts/modelzoo_common.sh. Default epochs: 1001 (the seed's recipe; the paper
# trains 4000). Writes <output_path>/<ASCEND_DEVICE_ID>/{train_<id>.log,test.log,eval.log,
# <CaseName>.log}; the checkpoints and PNGs go to <output_path>/{checkpoint,result}.
set -euo pipefail
source "$(dirname "$0")/modelzoo_common.sh"

epochs=1001
parse_args no_extra_options "$@"
export RANK_SIZE=1 RANK_ID=0 ASCEND_DEVICE_ID=${ASCEND_DEVICE_ID:-0}
dir=$output_path/$ASCEND_DEVICE_ID
mkdir -p "$dir"
case_name=${NETWORK}_bs${batch_size}_1p_acc

start=$(date +%s)
mapfile -t args < <(train_args)
run_logged "$dir/train_$ASCEND_DEVICE_ID.log" "$PYTHON" "$TRAIN_SCRIPT" "${args[@]}" \
    --device="$device" --distributed=none
test_and_eval "$dir"
end=$(date +%s)

write_summary "$dir" "$dir/train_$ASCEND_DEVICE_ID.log" 1 "$case_name" $((end - start)) \
    "$dir/eval.log"
