#!/usr/bin/env bash
# Sourced by scripts/build-cuda.sh and `scripts/package.sh cuda`: the CUDA 13.0 toolkit made
# from NVIDIA's PyPI wheels (no GPU, driver or system CUDA needed to build), and the
# environment that points the build at it.
#   CUDA_ROOT           the toolkit (bin/nvcc, include, lib, nvvm)
#   CUDA_COMPUTE_CAP    the GPU code the kernels are compiled for (see below)
#   NVCC_APPEND_FLAGS   PTX added beside that code, for every later GPU
#   CARGO_TARGET_DIR    its own, so the CPU build is not rebuilt
#   RUSTFLAGS           where the installed binaries find CUDA's libraries
# The wheels (~680 MB) and the toolkit (~1.3 GB) are kept under ~/.cache/perimeter-cuda.

cuda_cache="${XDG_CACHE_HOME:-$HOME/.cache}/perimeter-cuda"
cuda_requirements="$(dirname "${BASH_SOURCE[0]}")/toolkit-13.0.txt"
export CUDA_ROOT="$cuda_cache/13.0/nvidia/cu13"

if [ ! -x "$CUDA_ROOT/bin/nvcc" ]; then
  echo "== the CUDA 13.0 toolkit from PyPI (once, ~680 MB)" >&2
  pip3 download --quiet --no-deps --require-hashes -r "$cuda_requirements" -d "$cuda_cache/wheels-13.0"
  rm -rf "$cuda_cache/13.0.part" && mkdir -p "$cuda_cache/13.0.part"
  for wheel in "$cuda_cache"/wheels-13.0/*.whl; do
    unzip -q -o "$wheel" 'nvidia/*' -d "$cuda_cache/13.0.part"
  done
  # The linker looks for the unversioned name; the wheels carry only libcudart.so.13.
  ln -sf libcudart.so.13 "$cuda_cache/13.0.part/nvidia/cu13/lib/libcudart.so"
  rm -rf "$cuda_cache/13.0" && mv "$cuda_cache/13.0.part" "$cuda_cache/13.0"
fi

export CUDA_HOME="$CUDA_ROOT"
export PATH="$CUDA_ROOT/bin:$PATH"
# mistralrs-quant and candle-kernels link libcudart (-lcudart).
export LIBRARY_PATH="$CUDA_ROOT/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
# Ampere (8.0) machine code, plus compute_80 PTX that the driver compiles once (and caches)
# for Ada, Hopper and Blackwell. The build scripts of candle-kernels and mistralrs-quant take
# one capability; nvcc adds the PTX to every object through NVCC_APPEND_FLAGS. Not Turing
# (7.5, the oldest CUDA 13 supports): mistralrs-quant 0.8.1's kernels do not compile for it
# (its bfloat16 dequantization is left undefined below 8.0; ptxas stops on it).
export CUDA_COMPUTE_CAP=80
export NVCC_APPEND_FLAGS="-gencode=arch=compute_80,code=compute_80"

export CARGO_TARGET_DIR="${PERIMETER_CUDA_TARGET_DIR:-$HOME/.cache/perimeter-target-cuda}"
# RUSTFLAGS replaces .cargo/config.toml's flags, so the CPU level is repeated. The CUDA
# runtime (libcudart.so.13, linked) and the libraries loaded when a GPU is used (cuBLAS,
# cuRAND, NVRTC) are found beside the binaries' install folder: the package puts them in
# /usr/lib/perimeter-cuda. A build run in place finds them through LD_LIBRARY_PATH=$CUDA_ROOT/lib.
export RUSTFLAGS="-C target-cpu=x86-64-v3 -C link-arg=-Wl,-rpath,\$ORIGIN/../lib/perimeter-cuda"
# What the package bundles there (NVIDIA's redistributable runtime libraries).
cuda_bundled_libs=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libnvrtc-builtins.so.13.0)
