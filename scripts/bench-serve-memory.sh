#!/usr/bin/env bash
# Resident memory of a long-running `perimeter serve` across a series of different requests.
# mistral.rs keeps finished requests' KV caches for prefix reuse; Perimeter bounds them to 4
# (patches/README.md, prefix cache), so memory must level off instead of growing per request.
#   scripts/bench-serve-memory.sh [--model FILE] [--threads N] [--requests N] [--prompt-words N]
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/local/SmolLM2-135M-Instruct.Q4_1.gguf threads=2 requests=24 words=350
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --prompt-words) words=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/perimeter-target}
cargo build --release --locked -q --workspace

work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
# Stripped like the installed app (the line tables would add ~300 MiB of resident memory).
objcopy --strip-debug "$CARGO_TARGET_DIR/release/perimeter" "$work/perimeter"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$work/perimeter" serve --model "$model" --threads "$threads" --port "$port" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 120); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$port/v1/models" 2> /dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.5
done
rss() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }

echo "model $model, $threads threads, $requests requests of ~$words words each (all different), 8 answer tokens"
echo
echo "| request | RSS after (MiB) |"
echo "|---|---|"
echo "| (loaded) | $(rss) |"
for i in $(seq "$requests"); do
  # A different text per request (no shared prefix beyond the chat template).
  prompt=$(python3 -c "import random, sys; r = random.Random(int(sys.argv[1])); print(' '.join(r.choice(['alpha', 'beta', 'gamma', 'delta', 'parse', 'index', 'token', 'cache', 'file', 'line', 'value', 'error']) + str(r.randrange(1000)) for _ in range(int(sys.argv[2]))))" "$i" "$words")
  python3 - "$prompt" "http://127.0.0.1:$port/v1/chat/completions" <<'PY'
import json, sys, urllib.request
body = {"model": "default", "max_tokens": 8, "messages": [{"role": "user", "content": sys.argv[1]}]}
request = urllib.request.Request(sys.argv[2], json.dumps(body).encode(), {"Content-Type": "application/json"})
urllib.request.urlopen(request, timeout=600).read()
PY
  echo "| $i | $(rss) |"
done
