#!/usr/bin/env bash
# ModelZoo full run on the Ascend devices of one server through HCCL: one training process per
# device (RANK_ID, ASCEND_DEVICE_ID/DEVICE_ID from the rank table), then test + eval on rank 0.
#
#   bash scripts/modelzoo/train_full_8p.sh --data_path=./dataset [--rank_table=scripts/modelzoo/rank_table_8p.json]
#
# Not run on Ascend hardware by this project (none was available); on CPU it is exercised with
# the npu_bridge/hccl test double (tests/fakes) standing in for CANN. Options: see
# scripts/modelzoo/modelzoo_common.sh, plus
#   --rank_table=FILE    HCCL rank table (default scripts/modelzoo/rank_table_8p.json: edit the device
#                        IPs to your server's, `hccn_tool -i <id> -ip -g` prints them)
#   --server_index=N     which server of a multi-server table this is (default 0)
# RANK_SIZE is the number of devices in the table. Only rank 0 writes checkpoints, samples and
# the parsed log; each device logs to <output_path>/<device_id>/train_<device_id>.log.
set -euo pipefail
# shellcheck source=modelzoo_common.sh
source "$(dirname "$0")/modelzoo_common.sh"

epochs=1001
device=npu
rank_table=$ROOT/scripts/modelzoo/rank_table_8p.json
server_index=0
hccl_options() {
    case $1 in
        --rank_table=*) rank_table=${1#*=} ;;
        --server_index=*) server_index=${1#*=} ;;
        *) return 1 ;;
    esac
}
parse_args hccl_options "$@"
rank_table=$(cd "$(dirname "$rank_table")" && pwd)/$(basename "$rank_table")

# "<rank size>" then "<rank_id> <device_id>" for each device of this server.
mapfile -t table < <("$PYTHON" - "$rank_table" "$server_index" <<'PY'
import json, sys
table = json.load(open(sys.argv[1]))
servers = table['server_list']
print(sum(len(s['device']) for s in servers))
for d in servers[int(sys.argv[2])]['device']:
    print('%s %s' % (d['rank_id'], d['device_id']))
PY
)
export RANK_TABLE_FILE=$rank_table RANK_SIZE=${table[0]} JOB_ID=${JOB_ID:-10087}
case_name=${NETWORK}_bs${batch_size}_${RANK_SIZE}p_acc
mapfile -t args < <(train_args)

start=$(date +%s)
pids=() ranks=() devices=()
for entry in "${table[@]:1}"; do
    read -r rank dev <<<"$entry"
    mkdir -p "$output_path/$dev"
    RANK_ID=$rank ASCEND_DEVICE_ID=$dev DEVICE_ID=$dev \
        "$PYTHON" "$TRAIN_SCRIPT" "${args[@]}" --device="$device" --distributed=hccl \
        >"$output_path/$dev/train_$dev.log" 2>&1 &
    pids+=($!) ranks+=("$rank") devices+=("$dev")
    echo "rank $rank on device $dev: pid $!, log $output_path/$dev/train_$dev.log" >&2
done

# Wait for all; when one rank fails the others would block in HCCL forever, so stop them: TERM
# first (train_Sony.py saves and exits), KILL after a grace period (a rank blocked inside a
# collective never gets back to Python to handle the signal).
STOP_GRACE_SECONDS=30
status=()
stop_running_ranks() {
    local j waited=0 alive=1
    for j in "${!pids[@]}"; do
        [[ -z ${status[$j]:-} ]] && kill "${pids[$j]}" 2>/dev/null || true
    done
    while ((alive && waited < STOP_GRACE_SECONDS)); do
        alive=0
        for j in "${!pids[@]}"; do
            [[ -z ${status[$j]:-} ]] && kill -0 "${pids[$j]}" 2>/dev/null && alive=1
        done
        sleep 1
        waited=$((waited + 1))
    done
    for j in "${!pids[@]}"; do
        if [[ -z ${status[$j]:-} ]]; then
            kill -KILL "${pids[$j]}" 2>/dev/null || true
            wait "${pids[$j]}" 2>/dev/null || true
        fi
    done
}
while :; do
    running=0
    for i in "${!pids[@]}"; do
        [[ -n ${status[$i]:-} ]] && continue
        if kill -0 "${pids[$i]}" 2>/dev/null; then running=1; continue; fi
        code=0
        wait "${pids[$i]}" || code=$?
        status[$i]=$code
        if ((code != 0)); then
            echo "rank ${ranks[$i]} (device ${devices[$i]}) failed with exit code $code:" >&2
            tail -n 20 "$output_path/${devices[$i]}/train_${devices[$i]}.log" >&2
            stop_running_ranks
            exit 1
        fi
    done
    ((running)) || break
    sleep 2
done

chief=
for i in "${!ranks[@]}"; do
    [[ ${ranks[$i]} == 0 ]] && chief=${devices[$i]}
done
if [[ -z $chief ]]; then
    echo "all ${#pids[@]} ranks of this server finished; rank 0 (another server) tests and reports" >&2
    exit 0
fi
test_and_eval "$output_path/$chief" "$chief"
end=$(date +%s)
write_summary "$output_path/$chief" "$output_path/$chief/train_$chief.log" "$RANK_SIZE" \
    "$case_name" $((end - start)) "$output_path/$chief/eval.log"
