#!/usr/bin/env bash
# Builds Perimeter's Linux installers (.deb and .rpm) with the app and the `perimeter` CLI,
# stripped of the line tables the development build keeps for backtraces, then checks that
# the .deb declares every shared library the binaries load.
#   scripts/package.sh            # deb + rpm, into dist/
#   scripts/package.sh appimage   # also the AppImage: its tools come from the internet
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

bundles="deb,rpm"
[ "${1:-}" = "appimage" ] && bundles="deb,rpm,appimage"

say "building"
cargo build --release --locked --workspace

# The bundler takes the app from <target>/release; give it a staging folder with stripped
# copies, so the shared build keeps its line tables and is not rebuilt.
stage="$CARGO_TARGET_DIR/package-stage"
rm -rf "$stage" && mkdir -p "$stage/release"
for bin in perimeter-app perimeter; do
  objcopy --strip-debug "$CARGO_TARGET_DIR/release/$bin" "$stage/release/$bin"
done

say "bundling $bundles"
# The CLI goes in beside the app (/usr/bin/perimeter); its path is only known here.
extra=$(printf '{"bundle":{"linux":{"deb":{"files":{"/usr/bin/perimeter":"%s"}},"rpm":{"files":{"/usr/bin/perimeter":"%s"}}}}}' \
  "$stage/release/perimeter" "$stage/release/perimeter")
CARGO_TARGET_DIR="$stage" ui/node_modules/.bin/tauri bundle --ci --bundles "$bundles" --config "$extra"

mkdir -p dist
find "$stage/release/bundle" -type f \( -name '*.deb' -o -name '*.rpm' -o -name '*.AppImage' \) -exec cp {} dist/ \;

say "checking the .deb's dependencies"
deb=$(ls dist/*.deb | head -1)
scripts/check-deb-deps.sh "$deb"
ls -lh dist/
