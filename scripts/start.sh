#!/usr/bin/env bash
# Sets up what is missing, builds Perimeter and starts the desktop app on the bundled
# development model (SmolLM2-135M). Safe to run again: later runs only rebuild what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

say "building (the first build takes 20-30 minutes: mistral.rs and Tauri are large)"
cargo build --release --locked --workspace

bin="$CARGO_TARGET_DIR/release"
# Register the development model with the app, in place (it is never copied or deleted).
installed() {
  "$bin/perimeter" models list --json | python3 -c \
    'import json, sys; sys.exit(0 if any(m["id"] == sys.argv[1] for m in json.load(sys.stdin)["installed"]) else 1)' "$1"
}
if ! installed smollm2-135m-instruct-q4_1; then
  "$bin/perimeter" models import --link models/local/SmolLM2-135M-Instruct.Q4_1.gguf
fi
say "starting Perimeter"
exec "$bin/perimeter-app"
