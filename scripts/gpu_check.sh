#!/usr/bin/env bash
# One prepared check of every CUDA path (issue 17): bench/gpu_check.py with the project's
# venv when there is one; every argument is passed through.
#
#   scripts/gpu_check.sh [--time-limit 480] [--out DIR] [--device cuda|cpu] [--only NAME ...]
#                        [--small] [--list]
#
# Writes only under --out (default: $OUT if set, else a new temporary folder).
# Exit codes: 0 passed, 1 a check failed (or the time limit stopped the run),
# 2 bad arguments, 3 no CUDA device (nothing checked).
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$root/.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3 || command -v python)"
export PYTHONDONTWRITEBYTECODE=1
exec "$python" "$root/bench/gpu_check.py" "$@"
