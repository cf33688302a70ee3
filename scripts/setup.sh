#!/usr/bin/env bash
# Create .venv (if missing) and install wsss-core with the pinned versions CI uses.
# Usage: scripts/setup.sh   (then .venv/bin/wsss-run, .venv/bin/python -m pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test,gradcam]'
# grad-cam declares a second OpenCV wheel; we keep one (opencv-contrib-python-headless).
.venv/bin/python -m pip install -q -c constraints.txt --no-deps grad-cam
# the plugins that live in this repository
.venv/bin/python -m pip install -q -c constraints.txt -e plugins/deeplab -e plugins/oaa -e plugins/nsrom \
    -e plugins/edam -e plugins/moana -e plugins/getam
echo "wsss: installed into $(pwd)/.venv"
