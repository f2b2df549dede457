#!/usr/bin/env bash
# Packs what bench/gpu/device-check.sh needs on the lent GPU machine into .gpu/a, .gpu/b and
# .gpu/c (git-ignored through .git/info/exclude), each under the 64 MiB a call may carry beside
# the working tree: the CUDA build of the CLI (stripped, xz), the zero-weight Qwen2.5-Coder
# headers (shape_model.py) and SmolLM2-135M (xz, split). bench/gpu/README.md gives the calls.
#   bench/gpu/prepare.sh      # after scripts/build-cuda.sh --bin perimeter
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/cuda/toolkit.sh
bin="$CARGO_TARGET_DIR/release/perimeter"
[ -x "$bin" ] || { echo "no CUDA build at $bin: run scripts/build-cuda.sh --bin perimeter" >&2; exit 2; }
smol=models/local/SmolLM2-135M-Instruct.Q4_1.gguf
q05=models/local/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
q15=models/local/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
for f in "$smol" "$q05" "$q15"; do [ -f "$f" ] || { echo "missing $f (scripts/fetch-models.sh --real --real-1.5b)" >&2; exit 2; }; done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q gguf==0.19.0 numpy
py="$work/venv/bin/python"
mkdir "$work/hdr"
shape() { "$py" bench/gpu/shape_model.py --template "$1" --shape "$2" --out "$work/hdr/$3.header" > "$work/hdr/$3.size"; }
shape "$q05" same qwen-0.5b
shape "$q15" same qwen-1.5b
for s in 7b 14b 32b; do shape "$q15" "$s" "qwen-$s"; done
shape "$smol" same zero-smollm2

grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info && echo '/.gpu/' >> .git/info/exclude; }
rm -rf .gpu && mkdir -p .gpu/a .gpu/b .gpu/c
strip -o "$work/perimeter" "$bin"
xz -T0 -9 -c "$work/perimeter" > .gpu/a/perimeter.xz
tar -C "$work/hdr" -cf - . | xz -T0 -9e --lzma2=dict=64MiB > .gpu/a/hdr.tar.xz
xz -T0 -9 -c "$smol" > "$work/smol.xz"
# The working tree travels with every call (~12 MB): 53 MB of payload per call at most.
first=$(( 53000000 - $(stat -c %s .gpu/a/perimeter.xz) - $(stat -c %s .gpu/a/hdr.tar.xz) ))
# dd, not tail | head: under pipefail, head closing the pipe early fails the script.
part() { dd if="$work/smol.xz" of="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" ${3:+count="$3"} status=none; }
part .gpu/a/smol.0 0 "$first"
part .gpu/b/smol.1 "$first" 53000000
part .gpu/c/smol.2 "$((first + 53000000))"
du -sb .gpu/*
