#!/usr/bin/env bash
# Runs `perimeter bench inference` and llama.cpp (the peer) on the same GGUF file, the same
# prompt tokens and the same thread count, one after the other, and prints both with ratios.
#   scripts/bench-inference.sh [--model FILE] [--threads N] [--prompt-tokens N] [--dtype D] [--runs N]
#                              [--before BINARY]   # also an older `perimeter` build, for before/after in one run
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perimeter-target}"
# Measured as a user runs it: a developer's RUST_BACKTRACE makes every error built while loading
# (even one that is handled) capture and symbolize a backtrace.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

model=models/local/SmolLM2-135M-Instruct.Q4_1.gguf threads=2 prompt_tokens=1000 dtype=auto runs=3 decode=128 before=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --prompt-tokens) prompt_tokens=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --decode-tokens) decode=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

cargo build --release --locked -q --workspace
if [ ! -d bench/llama-cpp-peer/node_modules ]; then
  (cd bench/llama-cpp-peer && npm install --ignore-scripts --omit=optional --no-fund --no-audit --loglevel=error)
fi

# The model file into the page cache first: the engine measured first would otherwise read it
# from disk (after a build, say) while the others read it from memory, and its load time would
# measure the disk.
cat "$model" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Stripped like the installed app: the line tables the development build keeps add ~300 MiB
# to its resident memory, which would be charged to the engine.
objcopy --strip-debug "$CARGO_TARGET_DIR/release/perimeter" "$work/perimeter"
"$work/perimeter" --threads "$threads" bench inference --json --model "$model" \
  --prompt-tokens "$prompt_tokens" --decode-tokens "$decode" --runs "$runs" --dtype "$dtype" \
  --save-prompt "$work/prompt.txt" --save-follow-up "$work/follow-up.txt" > "$work/ours.json"
if [ -n "$before" ]; then
  "$before" --threads "$threads" bench inference --json --model "$model" \
    --prompt-tokens "$prompt_tokens" --decode-tokens "$decode" --runs "$runs" --dtype "$dtype" > "$work/before.json"
else
  echo '{}' > "$work/before.json"
fi
node bench/llama-cpp-peer/peer.mjs --model "$model" --prompt-file "$work/prompt.txt" --follow-up-file "$work/follow-up.txt" \
  --threads "$threads" --decode-tokens "$decode" --runs "$runs" > "$work/peer.json"

python3 - "$work/ours.json" "$work/peer.json" "$dtype" "$work/before.json" <<'PY'
import json, sys
ours, peer = (json.load(open(p)) for p in sys.argv[1:3])
dtype = sys.argv[3]
before = json.load(open(sys.argv[4]))
rows = [("load (s)", "load_s", False), ("time to first token (ms)", "time_to_first_token_ms", False),
        ("prompt tokens/s", "prompt_tokens_per_s", True), ("decode tokens/s", "decode_tokens_per_s", True),
        ("peak RSS (MiB)", "peak_rss_bytes", False),
        ("follow-up: time to first token (ms)", "follow_up_time_to_first_token_ms", False)]
print(f"model {ours['model']} ({ours['quantization']}), {ours['threads']} threads, dtype {dtype}, "
      f"CPU kernels {ours.get('cpu_kernels', 'avx2')}, "
      f"prompt {ours['prompt_tokens']} tokens (peer: {peer['prompt_tokens']}), decode {ours['decode_tokens']}, median of {ours['runs']} runs")
print()
fmt = lambda x: f"{x:.1f}" if x else "n/a"
if before:
    print("| measure | before | mistral.rs (Perimeter) | llama.cpp (peer) | before/peer | ours/peer |")
    print("|---|---|---|---|---|---|")
else:
    print("| measure | mistral.rs (Perimeter) | llama.cpp (peer) | ratio ours/peer |")
    print("|---|---|---|---|")
for label, key, higher_better in rows:
    a, b, c = ours.get(key), peer.get(key), before.get(key)
    if key == "peak_rss_bytes":
        a, b, c = (x / 2**20 if x else None for x in (a, b, c))
    ratio = lambda x: f"{x / b:.2f}x" if x and b else "n/a"
    note = " (higher is better)" if higher_better else ""
    if before:
        print(f"| {label}{note} | {fmt(c)} | {fmt(a)} | {fmt(b)} | {ratio(c)} | {ratio(a)} |")
    else:
        print(f"| {label}{note} | {fmt(a)} | {fmt(b)} | {ratio(a)} |")
for name, r in (("ours", ours), ("peer", peer)):
    if r.get("follow_up_time_to_first_token_ms") and r.get("time_to_first_token_ms"):
        print(f"\n{name}: a follow-up ({r['follow_up_tokens']} prompt tokens, {r['follow_up_new_tokens']} after the first answer) "
              f"waits {r['follow_up_time_to_first_token_ms'] / r['time_to_first_token_ms']:.2f}x the first question's time to first token", end="")
print()
PY
