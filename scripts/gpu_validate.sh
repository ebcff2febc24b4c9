#!/usr/bin/env bash
# The device entry command: install the brought wheels offline, then validate Chronos on the GPU.
#
#     scripts/gpu_validate.sh [OUT] [BUDGET_S]       # defaults: gpu-validation-out, 420
#
# Run from a copy of the repository that holds wheels/device/ (scripts/fetch_device_wheels.sh
# fills it on a machine with network). The wheels go into .device-site/ (git-ignored) with
# `pip install --no-index`, never into the system Python, and nothing is downloaded. Then
# `python -m chronos.validate` runs every step (docs/gpu-validation.md) under the time budget and
# writes everything under OUT: the results JSON, the generated page (OUT/docs/gpu-validation.md)
# and the replay store (OUT/data/replay/<device>.sqlite); copy OUT/docs and OUT/data into the
# repository to commit them. Exit status: chronos.validate's (0 all steps ran, 1 a step failed,
# 2 the GPU backend is not usable).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-gpu-validation-out}"
BUDGET="${2:-420}"
WHEELS="$ROOT/wheels/device"
SITE="$ROOT/.device-site"
cd "$ROOT"

if [ ! -d "$WHEELS" ] || ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  echo "error: no wheels in $WHEELS; run scripts/fetch_device_wheels.sh on a machine with network" >&2
  exit 2
fi
if [ ! -f "$SITE/.installed" ]; then
  python3 -m pip install --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
  touch "$SITE/.installed"
fi
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import gymnasium, hydra, omegaconf, cachetools, cupy" || {
  echo "error: a dependency does not import (see above)" >&2
  exit 2
}
exec python3 -m chronos.validate --out "$OUT" --budget-s "$BUDGET"
