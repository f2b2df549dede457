#!/usr/bin/env bash
# Runs the perimeter-cuda package as installed (unpacked into a temporary root, so its
# binaries find the bundled CUDA libraries through their RUNPATH) and checks what it says:
# on a machine without an NVIDIA driver it must start, say why it uses the CPU, and run a
# model there; with a driver and an Ampere or later GPU it must name the GPU and run there.
#   scripts/check-cuda-package.sh dist/perimeter-cuda_0.1.0_amd64.deb [MODEL.gguf]
set -euo pipefail
cd "$(dirname "$0")/.."
deb="$1"
model="${2:-models/local/SmolLM2-135M-Instruct.Q4_1.gguf}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
cli="$root/usr/bin/perimeter"

for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
  [ -f "$root/usr/lib/perimeter-cuda/$lib" ] || { echo "error: the package lacks /usr/lib/perimeter-cuda/$lib" >&2; exit 1; }
done
# Nothing from a toolkit on this machine may stand in for the bundled libraries.
hw=$(env -u LD_LIBRARY_PATH "$cli" hw)
echo "$hw" | sed -n '/^Engine/,/^$/p'
run=$(env -u LD_LIBRARY_PATH "$cli" bench inference --model "$model" --prompt-tokens 64 --decode-tokens 8 --runs 1 --json)
# One line: layers on the GPU, all layers, where it ran (a failed assert stops the script).
fields=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["decode_tokens_per_s"] > 0, r
print(r["layers_on_gpu"], r["layers"], r["backend"])' "$run")
read -r on of backend <<<"$fields"
echo "bench inference ran on: $backend (layers on the GPU: $on of $of)"

if [ -e /proc/driver/nvidia/version ]; then
  grep -q "backends usable here: cpu, cuda" <<<"$hw" || { echo "error: a driver is loaded but the CUDA build does not use it" >&2; exit 1; }
  [[ "$backend" == *"(CUDA, compute "* ]] || { echo "error: the model did not run on the GPU: $backend" >&2; exit 1; }
  # A small model fits any supported GPU whole.
  [ "$on" = "$of" ] && [ "$of" -gt 0 ] || { echo "error: only $on of $of layers on the GPU" >&2; exit 1; }
else
  grep -q "no CUDA: no NVIDIA driver: libcuda.so.1 not found" <<<"$hw" || { echo "error: hw does not say why CUDA is not used" >&2; exit 1; }
  [ "$backend" = "CPU (no NVIDIA driver: libcuda.so.1 not found)" ] || { echo "error: unexpected backend: $backend" >&2; exit 1; }
  [ "$on" = 0 ] || { echo "error: $on layers on a GPU that is not there" >&2; exit 1; }
fi
echo "ok: $(basename "$deb") starts, says where it runs, and runs $(basename "$model")"
