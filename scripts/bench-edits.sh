#!/usr/bin/env bash
# The edit benchmark: Perimeter and Aider (the peer) on the same exercises with the same model
# file, in one run (`perimeter bench edits`, Aider's protocol: two tries, the second with the
# test output).
#   scripts/bench-edits.sh --polyglot DIR [--model FILE] [--limit N] [--languages javascript,rust,cpp,go]
#                          [--assistants perimeter,aider] [--out FILE] [--threads N] [-- MORE ARGS]
# --polyglot: Aider-AI/polyglot-benchmark, as a checkout or a bare git repository; only its
# javascript, rust, cpp and go exercises are used (its python/ folder is kept out on purpose:
# those exercises are used elsewhere to check this work). --polyglot tests/fixtures/edit-bench
# runs the three small exercises of the smoke test instead.
# Installs what the test runs need (Go, CMake, jest and babel, the exercises' Rust crates) and
# aider-chat 0.86.2 in its own virtualenv; the tests themselves run offline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh --tests

polyglot= model=models/local/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf limit= languages=javascript,rust,cpp,go
assistants=perimeter,aider out= threads=2 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --polyglot) polyglot=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --languages) languages=$2; shift 2 ;;
    --assistants) assistants=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$polyglot" ] || { echo "give --polyglot DIR: a checkout (or bare repository) of Aider-AI/polyglot-benchmark" >&2; exit 2; }
[ -f "$model" ] || { echo "no model file $model (scripts/fetch-models.sh --real, or --real-1.5b)" >&2; exit 2; }
out=${out:-bench/edits/results/$(basename "$model" .gguf).jsonl}

cache="$HOME/.cache/perimeter-bench"
exercises="$polyglot"
if git --git-dir="$polyglot" rev-parse --is-bare-repository >/dev/null 2>&1 && [ ! -d "$polyglot/javascript" ]; then
  # A bare repository: write its exercises of the four languages (never python/) once.
  rev=$(git --git-dir="$polyglot" rev-parse HEAD)
  exercises="$cache/polyglot-$rev"
  if [ ! -d "$exercises" ]; then
    say "writing the exercises of $polyglot at ${rev:0:12}"
    mkdir -p "$exercises.part"
    git --git-dir="$polyglot" archive "$rev" javascript/exercises rust/exercises cpp/exercises go/exercises | tar -x -C "$exercises.part"
    mv "$exercises.part" "$exercises"
  fi
fi

if [ -d "$exercises/rust/exercises/practice" ]; then
  say "fetching the crates the Rust exercises use (their test runs are offline)"
  for manifest in "$exercises"/rust/exercises/practice/*/Cargo.toml "$exercises"/rust/exercises/practice/*/.meta/Cargo-example.toml; do
    [ -f "$manifest" ] && grep -q '^\[dependencies\]' "$manifest" || continue
    probe=$(mktemp -d)
    cp "$manifest" "$probe/Cargo.toml" && mkdir "$probe/src" && touch "$probe/src/lib.rs"
    (cd "$probe" && cargo fetch -q) || echo "warning: could not fetch the crates of $manifest" >&2
    rm -rf "$probe"
  done
fi

aider="$cache/aider-venv/bin/aider"
if [[ ",$assistants," == *",aider,"* ]] && ! "$aider" --version 2>/dev/null | grep -q '^aider 0.86.2$'; then
  say "installing aider-chat 0.86.2 in $cache/aider-venv (a few minutes)"
  python3 -m venv "$cache/aider-venv"
  "$cache/aider-venv/bin/pip" install -q aider-chat==0.86.2
fi

cargo build --release --locked -q --workspace
say "benchmark: $(basename "$model"), $assistants, results in $out"
"$CARGO_TARGET_DIR/release/perimeter" --threads "$threads" bench edits \
  --exercises "$exercises" --model "$model" --languages "$languages" ${limit:+--limit "$limit"} \
  --assistants "$assistants" --aider "$aider" --js-modules "$PERIMETER_BENCH_JS_MODULES" --out "$out" "${extra[@]}"
