#!/usr/bin/env bash
# Create .venv (if missing) and install wsss-core with the pinned versions CI uses.
# Usage: scripts/setup.sh   (then .venv/bin/wsss-run, .venv/bin/python -m pytest)
# On success it prints one line; every pip call's output goes to .venv/setup.log, which is
# printed in full (with the step that failed) when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
LOG=.venv/setup.log
: >"$LOG"
# step CMD...: run CMD with its output appended to $LOG; on failure show the log and stop.
step() {
  echo "+ $*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "wsss: set-up failed at: $* (log: $(pwd)/$LOG)" >&2
    exit 1
  fi
}
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
step "${PIP[@]}" --upgrade pip
step "${PIP[@]}" -c constraints.txt -e '.[test,gradcam,prepare]'
# grad-cam declares a second OpenCV wheel; we keep one (opencv-contrib-python-headless).
step "${PIP[@]}" -c constraints.txt --no-deps grad-cam
# the plugins that live in this repository
step "${PIP[@]}" -c constraints.txt -e plugins/deeplab -e plugins/oaa -e plugins/nsrom \
    -e plugins/edam -e plugins/moana -e plugins/getam
echo "wsss: installed into $(pwd)/.venv"
