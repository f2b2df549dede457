#!/usr/bin/env bash
# Builds the CUDA variant of the app and the CLI (engine feature `cuda`) on a machine without a
# GPU: the toolkit comes from PyPI (scripts/cuda/toolkit.sh), the build has its own target
# directory. Times and sizes: BENCHMARKS.md, "CUDA build".
#   scripts/build-cuda.sh                   # <target>/release/perimeter and perimeter-app
#   scripts/build-cuda.sh --bin perimeter   # extra arguments go to cargo build
# Run a build in place with LD_LIBRARY_PATH=$CUDA_ROOT/lib (the package bundles the libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/cuda/toolkit.sh

say "building the CUDA variant (nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), compute capability $CUDA_COMPUTE_CAP + PTX) into $CARGO_TARGET_DIR"
started=$SECONDS
cargo build --release --locked --workspace --features perimeter-engine/cuda "$@"
say "built in $(( (SECONDS - started) / 60 )) min"
