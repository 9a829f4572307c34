#!/usr/bin/env bash
# ModelZoo "full" run on one device: train, test at full resolution, evaluate, summarise.
#
#   bash scripts/modelzoo/train_full_1p.sh --data_path=./dataset [--train_epochs=1001] [options]
#
# Options: see scripts/modelzoo/modelzoo_common.sh. Default epochs: 1001 (the seed's recipe; the paper
# trains 4000). Writes <output_path>/<ASCEND_DEVICE_ID>/{train_<id>.log,test.log,eval.log,
# <CaseName>.log}; the checkpoints and PNGs go to <output_path>/{checkpoint,result}.
set -euo pipefail
# shellcheck source=modelzoo_common.sh
source "$(dirname "$0")/modelzoo_common.sh"

epochs=1001
parse_args no_extra_options "$@"
setup_one_device acc

start=$(date +%s)
train_one_device
test_and_eval "$dir"
end=$(date +%s)

write_summary "$dir" "$dir/train_$ASCEND_DEVICE_ID.log" 1 "$case_name" $((end - start)) \
    "$dir/eval.log"
