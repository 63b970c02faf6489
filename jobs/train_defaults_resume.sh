#!/usr/bin/env bash
# Second training window: resumes the chosen candidates of jobs/train_defaults.sh from INIT_DIR
# (the MSE+LPIPS keyframe codec at every quality and both predictors), fewer processes so each
# gets more GPU time.
#   bash jobs/train_defaults_resume.sh DATA.npz INIT_DIR RUN_DIR MINUTES
set -u
DATA=$1; INIT=$2; RUN=$3; MIN=$4
PY=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUN"
pids=()
for q in 1 2 3 4 5; do
  $PY -m jobs.train_keyframe train --data "$DATA" --out "$RUN/kf_lpips" --quality $q --lpips-weight 500 \
    --init "$INIT/kf_lpips" --lr 1e-4 --minutes "$MIN" --steps 1000000 ${KF_ARGS:-} >"$RUN/kf_lpips_q$q.log" 2>&1 & pids+=($!)
done
for c in ${PRED_CHANNELS:-32 48}; do
  $PY -m jobs.train_predictor --data "$DATA" --out "$RUN/pred$c" --init "$INIT/pred$c/predictor.pt" \
    --minutes "$MIN" --steps 1000000 ${PRED_ARGS:---batch 32} >"$RUN/pred$c.log" 2>&1 & pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
tail -n 2 "$RUN"/*.log
exit $status
