#!/usr/bin/env bash
# Trains the restoration-model candidates at once on one machine (one GPU is plenty: the models are
# small), each within the same wall-time budget, checkpointing into RUN_DIR/<name>/ as they go:
#   bash jobs/train_restore_candidates.sh PAIRS.npz RUN_DIR MINUTES
# Candidates: 48 channels x 8 blocks with LPIPS weight 1 and 2, and 64 channels x 8 blocks (weight 1).
# Selection happens afterwards on the CPU on held-out frames (python -m jobs.benchmark_restore), export
# with `python -m jobs.train_restore export`.
set -u
PAIRS=$1; RUN=$2; MIN=$3
PY=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$RUN"
pids=()
train() {  # name, then train options
  local name=$1; shift
  $PY -m jobs.train_restore train --pairs "$PAIRS" --out "$RUN/$name" --minutes "$MIN" --steps 1000000 \
    --batch ${BATCH:-32} "$@" >"$RUN/$name.log" 2>&1 & pids+=($!)
}
train c48_lp1 --channels 48 --blocks 8 --lpips-weight 1
train c48_lp2 --channels 48 --blocks 8 --lpips-weight 2
train c64_lp1 --channels 64 --blocks 8 --lpips-weight 1
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
tail -n 2 "$RUN"/*.log
exit $status
