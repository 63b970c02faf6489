#!/usr/bin/env bash
# Trains every default-model candidate at once on one machine (one GPU is plenty: the models are
# small), each within the same wall-time budget, then leaves checkpoints and logs in RUN_DIR.
#   bash jobs/train_defaults.sh DATA.npz RUN_DIR MINUTES
# Candidates: keyframe codec at 5 qualities, MSE-only and MSE+LPIPS; predictor with 32 and 48 base
# channels. Export and selection happen afterwards on the CPU (python -m jobs.train_keyframe export,
# python -m jobs.benchmark_codec).
set -u
DATA=$1; RUN=$2; MIN=$3
PY=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUN"
pids=()
for q in 1 2 3 4 5; do
  $PY -m jobs.train_keyframe train --data "$DATA" --out "$RUN/kf_mse" --quality $q \
    --minutes "$MIN" --steps 1000000 ${KF_ARGS:-} >"$RUN/kf_mse_q$q.log" 2>&1 & pids+=($!)
  $PY -m jobs.train_keyframe train --data "$DATA" --out "$RUN/kf_lpips" --quality $q --lpips-weight 500 \
    --minutes "$MIN" --steps 1000000 ${KF_ARGS:-} >"$RUN/kf_lpips_q$q.log" 2>&1 & pids+=($!)
done
for c in 32 48; do
  $PY -m jobs.train_predictor --data "$DATA" --out "$RUN/pred$c" --base-channels $c \
    --minutes "$MIN" --steps 1000000 ${PRED_ARGS:---batch 32} >"$RUN/pred$c.log" 2>&1 & pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
tail -n 2 "$RUN"/*.log
exit $status
