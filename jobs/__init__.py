"""Entry points, run as `python -m jobs.NAME` from the repository root: the Ray jobs (compress,
restore), the training jobs (prepare_data, train_*) and the jobs that write docs/ (benchmark_*,
report_sample). Shared helpers: ray_job (the Ray jobs), benchmarks_common and ablation_report (the
benchmarks)."""
