#!/usr/bin/env bash
# ModelZoo performance run on one device: a short training, then FPS and step time from the
# per-step Time= values after --warmup_steps.
#
#   bash scripts/modelzoo/train_performance_1p.sh --data_path=./dataset [--train_epochs=2] [options]
#
# Options: see scripts/modelzoo/modelzoo_common.sh. Default epochs: 2 (322 steps on the Sony set).
# Writes <output_path>/<ASCEND_DEVICE_ID>/{train_<id>.log,<CaseName>.log}.
set -euo pipefail
# shellcheck source=modelzoo_common.sh
source "$(dirname "$0")/modelzoo_common.sh"

epochs=2
parse_args no_extra_options "$@"
setup_one_device perf
use_scratch_checkpoint

start=$(date +%s)
train_one_device --save_freq=1000000
end=$(date +%s)

write_summary "$dir" "$dir/train_$ASCEND_DEVICE_ID.log" 1 "$case_name" $((end - start))
