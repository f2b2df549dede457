#!/usr/bin/env bash
# Sets up what is missing (system packages, npm packages, the test models) and runs every
# test: the UI's unit tests (Vitest), engine unit tests, real-model inference tests,
# end-to-end tests of the CLI, and the desktop app driven in its real window (WebDriver, Xvfb).
# Tests build in the release profile: the model tests are ~50x slower in debug.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh --tests

say "type-checking the UI against the generated bindings, and running its unit tests"
(cd ui && npm run --silent check && npx vitest run --silent)

say "running the test suite"
cargo test --release --locked --workspace -- "$@"

say "running the tests of our changes to patched dependencies (patches/README.md)"
cargo test --release --locked -p mistralrs-core --lib -- attention::backends::cpu token_embedding ops::tests::by_position_chunks prefix_cacher

say "checking that patches/ is the published crates plus patches/*.diff"
scripts/check-patches.sh

say "building the app and the CLI (from the test build: only our binaries may be compiled)"
# The test build and the app build must resolve one feature set, or every build after a test
# run rebuilds mistral.rs (~6 min on 2 cores); see the getrandom line in the engine's Cargo.toml.
build_log=$(cargo build --release --locked --workspace 2>&1) || { echo "$build_log" >&2; exit 1; }
echo "$build_log" >&2
rebuilt=$(echo "$build_log" | grep -E '^ *Compiling ' | grep -vE 'Compiling perimeter-(app|cli|engine) ' || true)
if [ -n "$rebuilt" ]; then
  echo "error: the app build recompiled dependencies the test build had already compiled:" >&2
  echo "$rebuilt" >&2
  echo "compare 'cargo tree -e features' with and without dev-dependencies and pin the difference" >&2
  exit 1
fi

say "running the app's window tests (screenshots in tests/app/screenshots/)"
PATH="$(dirname "$TAURI_DRIVER"):$PATH" xvfb-run -a -s "-screen 0 1280x800x24" \
  python3 tests/app/e2e.py "$CARGO_TARGET_DIR/release/perimeter-app" "$CARGO_TARGET_DIR/release/perimeter"

say "building the installers and checking the .deb's dependencies"
scripts/package.sh
