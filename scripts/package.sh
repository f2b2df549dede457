#!/usr/bin/env bash
# Builds Perimeter's Linux installers (.deb and .rpm) with the app and the `perimeter` CLI,
# stripped of the line tables the development build keeps for backtraces, then checks that
# the .deb declares (or carries) every shared library the binaries load.
#   scripts/package.sh            # deb + rpm, into dist/
#   scripts/package.sh appimage   # also the AppImage: its tools come from the internet
#   scripts/package.sh cuda       # perimeter-cuda: the CUDA build, with NVIDIA's runtime
#                                 # libraries in /usr/lib/perimeter-cuda (it replaces perimeter)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

bundles="deb,rpm"
[ "${1:-}" = "appimage" ] && bundles="deb,rpm,appimage"
variant=cpu
[ "${1:-}" = "cuda" ] && variant=cuda

config='{}'
if [ "$variant" = cuda ]; then
  source scripts/cuda/toolkit.sh
  say "building the CUDA variant"
  cargo build --release --locked --workspace --features perimeter-engine/cuda
  # A second package under its own name, in place of the CPU one (same binaries' paths).
  libs=$(for l in "${cuda_bundled_libs[@]}"; do printf '"/usr/lib/perimeter-cuda/%s":"%s",' "$l" "$(readlink -f "$CUDA_ROOT/lib/$l")"; done)
  config=$(printf '{"productName":"Perimeter CUDA","bundle":{"linux":{"deb":{"conflicts":["perimeter"],"replaces":["perimeter"],"provides":["perimeter"],"files":{%s}},"rpm":{"conflicts":["perimeter"],"obsoletes":["perimeter"],"provides":["perimeter"],"files":{%s}}}}}' "${libs%,}" "${libs%,}")
else
  say "building"
  cargo build --release --locked --workspace
fi

# The bundler takes the app from <target>/release; give it a staging folder with stripped
# copies, so the shared build keeps its line tables and is not rebuilt.
stage="$CARGO_TARGET_DIR/package-stage"
rm -rf "$stage" && mkdir -p "$stage/release"
for bin in perimeter-app perimeter; do
  objcopy --strip-debug "$CARGO_TARGET_DIR/release/$bin" "$stage/release/$bin"
done

say "bundling $bundles ($variant)"
# The CLI goes in beside the app (/usr/bin/perimeter); its path is only known here.
cli=$(printf '{"bundle":{"linux":{"deb":{"files":{"/usr/bin/perimeter":"%s"}},"rpm":{"files":{"/usr/bin/perimeter":"%s"}}}}}' \
  "$stage/release/perimeter" "$stage/release/perimeter")
merged=$(python3 -c 'import json,sys
def merge(a, b):
    for k, v in b.items():
        a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) else v
    return a
print(json.dumps(merge(json.loads(sys.argv[1]), json.loads(sys.argv[2]))))' "$cli" "$config")
CARGO_TARGET_DIR="$stage" ui/node_modules/.bin/tauri bundle --ci --bundles "$bundles" --config "$merged"

mkdir -p dist
# Named by the package ("Perimeter CUDA_0.1.0_amd64.deb" → perimeter-cuda_0.1.0_amd64.deb).
deb=""
while IFS= read -r -d '' file; do
  name=$(basename "$file")
  copy="dist/${name/Perimeter CUDA/perimeter-cuda}"
  cp "$file" "$copy"
  [[ "$name" == *.deb ]] && deb="$copy"
done < <(find "$stage/release/bundle" -type f \( -name '*.deb' -o -name '*.rpm' -o -name '*.AppImage' \) -print0)

say "checking the .deb's dependencies"
scripts/check-deb-deps.sh "$deb"
[ "$variant" = cuda ] && scripts/check-cuda-package.sh "$deb"
ls -lh dist/
