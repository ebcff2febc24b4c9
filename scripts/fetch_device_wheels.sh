#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (it has no network) into wheels/device/ (git-ignored).
#
# The device runs CPython 3.12 on x86_64 Linux with numpy, cupy-cuda13x, torch, pytest and
# hypothesis installed; Chronos also needs gymnasium, hydra-core, omegaconf and cachetools.
# This fetches exactly those and their dependencies that are not already there, pinned to the
# versions the development environment runs, as cp312 manylinux (or pure-Python) wheels.
# antlr4-python3-runtime 4.9.3 (hydra's parser runtime) exists only as an sdist: it is built
# here into a pure-Python wheel with `pip wheel --no-deps`.
#
# Re-runnable: pip skips files already downloaded. Then, on the device:
#     scripts/gpu_validate.sh            # installs these with --no-index and validates
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/wheels/device}"
PY_VERSION="${DEVICE_PYTHON:-3.12}"
ABI="cp${PY_VERSION/./}"
mkdir -p "$DEST"

# Missing on the device, with the dependencies it does not have (numpy stays the device's).
PACKAGES=(
  "gymnasium==1.4.0"
  "cloudpickle==3.1.3"
  "farama-notifications==0.0.6"
  "typing-extensions==4.16.0"
  "hydra-core==1.3.8"
  "omegaconf==2.3.1"
  "PyYAML==6.0.4"
  "packaging==26.4"
  "cachetools==8.0.2"
  # The CUDA 12 ptxas: tests/test_driver_compat.py's gpu test loads its cubins on the device's
  # driver (what a CUDA 12 cluster runs); 40 MB, no dependencies.
  "nvidia-cuda-nvcc-cu12==12.9.86"
)

python3 -m pip download --no-deps --only-binary=:all: \
  --python-version "$PY_VERSION" --implementation cp --abi "$ABI" --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any \
  -d "$DEST" "${PACKAGES[@]}"

if ! ls "$DEST"/antlr4_python3_runtime-4.9.3-*.whl >/dev/null 2>&1; then
  python3 -m pip wheel --no-deps -w "$DEST" "antlr4-python3-runtime==4.9.3"
fi

echo "wheels for CPython $PY_VERSION in $DEST:"
ls -1 "$DEST"
