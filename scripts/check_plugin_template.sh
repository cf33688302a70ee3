#!/usr/bin/env bash
# Install examples/plugin_template from its folder (not editable, as a user would), run its
# tests and the conformance suite on it, then uninstall it again.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
build=$(mktemp -d)
trap 'rm -rf "$build"; .venv/bin/python -m pip uninstall -y -q wsss-template >/dev/null 2>&1 || true' EXIT
cp -r examples/plugin_template "$build/"
.venv/bin/python -m pip install -q -c constraints.txt "$build/plugin_template"
.venv/bin/wsss-run --check-plugin template
(cd "$build/plugin_template" && "$OLDPWD/.venv/bin/pytest" -q -p no:cacheprovider)  # imports the installed copy
echo "plugin template: installed, conformance suite and its tests passed"
