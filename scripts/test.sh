#!/usr/bin/env bash
# Sets up what is missing (system packages, npm packages, the test models) and runs every
# test: the UI's unit tests (Vitest), engine unit tests, real-model inference tests, and
# end-to-end tests of the CLI.
# Tests build in the release profile: the model tests are ~50x slower in debug.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh --tests

say "running the UI's unit tests"
(cd ui && npx vitest run --silent)

say "running the test suite"
cargo test --release --locked --workspace -- "$@"
