#!/usr/bin/env bash
# Sets up what is missing (system packages, npm packages, the test models) and runs every
# test: the UI's unit tests (Vitest), engine unit tests, real-model inference tests,
# end-to-end tests of the CLI, and the desktop app driven in its real window (WebDriver, Xvfb).
# Tests build in the release profile: the model tests are ~50x slower in debug.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh --tests

say "running the UI's unit tests"
(cd ui && npx vitest run --silent)

say "running the test suite"
cargo test --release --locked --workspace -- "$@"

say "running the tests of our changes to patched dependencies (patches/README.md)"
cargo test --release --locked -p mistralrs-core --lib attention::backends::cpu

say "running the app's window tests (screenshots in tests/app/screenshots/)"
cargo build --release --locked --workspace
PATH="$(dirname "$TAURI_DRIVER"):$PATH" xvfb-run -a -s "-screen 0 1280x800x24" \
  python3 tests/app/e2e.py "$CARGO_TARGET_DIR/release/perimeter-app" "$CARGO_TARGET_DIR/release/perimeter"

say "building the installers and checking the .deb's dependencies"
scripts/package.sh
