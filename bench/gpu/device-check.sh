#!/usr/bin/env bash
# The CUDA build on a real NVIDIA GPU, in one run: the probe, an answer on the GPU against the
# same answer on the CPU (SmolLM2-135M, real weights, greedy), and speed on the GPU and the CPU of
# the same machine with Qwen2.5-Coder shapes (zero-weight files from shape_model.py: the real
# files do not fit through the lent machine's 64 MiB per call). bench/gpu/README.md.
#   bench/gpu/device-check.sh DIR OUT
# DIR holds perimeter (the CUDA build), smollm2.gguf and *.header + *.size (shape_model.py:
# qwen-0.5b … qwen-32b, zero-smollm2).
# CUDA's libraries come from the machine (its toolkit or PyTorch's wheels), found by name, or
# from CUDA_LIBS (a folder).
set -u
dir=$1 out=$2
mkdir -p "$out"
export PERIMETER_DATA_DIR=$dir/data CUDA_CACHE_PATH=$dir/nvcache RUST_BACKTRACE=0
bin=$dir/perimeter
stamp() { date +%s.%N; }
step() { echo; echo "=== $*"; }

step "GPU and driver"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,compute_cap --format=csv
libdirs=${CUDA_LIBS:+$CUDA_LIBS:}$(find /usr/local /opt /usr/lib -name 'libcublasLt.so.13*' -o -name 'libcudart.so.13*' \
  -o -name 'libnvrtc.so.13*' -o -name 'libcurand.so.10*' -o -name 'libcublas.so.13*' 2>/dev/null |
  xargs -r -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH=$libdirs
echo "CUDA libraries from: $libdirs"
ldd "$bin" | grep -E "not found|cuda" || true

step "zero-weight models (sparse files)"
for h in "$dir"/*.header; do
  m=${h%.header}.gguf
  cp "$h" "$m" && truncate -s "$(cat "${h%.header}.size")" "$m"
  ls -l "$m"
done

step "perimeter hw"
timeout 120 "$bin" hw

# The same question on the GPU and on the CPU (no GPU visible): the first GPU answer also pays
# the driver's one-time compile of the kernels' PTX for this GPU (cached in CUDA_CACHE_PATH).
question="Write a Python function that returns the factorial of n."
for run in gpu-first gpu cpu; do
  step "ask on $run"
  env_cpu=(); [ "$run" = cpu ] && env_cpu=(CUDA_VISIBLE_DEVICES=)
  t0=$(stamp)
  env "${env_cpu[@]}" timeout 180 "$bin" ask --model "$dir/smollm2.gguf" --max-tokens 64 "$question" > "$out/answer-$run.txt" 2> "$out/answer-$run.err"
  rc=$?
  echo "rc=$rc seconds=$(python3 -c "print(round($(stamp) - $t0, 1))")"
  cat "$out/answer-$run.txt"; tail -3 "$out/answer-$run.err"
done
step "GPU answer equals CPU answer?"
if [ ! -s "$out/answer-gpu.txt" ]; then echo "no answer on the GPU"
elif cmp -s "$out/answer-gpu.txt" "$out/answer-cpu.txt"; then echo "identical"
else echo "DIFFERENT:"; diff "$out/answer-gpu.txt" "$out/answer-cpu.txt"; fi

# Speed: 1,000-token prompt, 128 decoded tokens, median of 2 runs; each model on the GPU, then
# the smaller ones on this machine's CPU as the same-run peer.
bench() { # label, env, model
  local label=$1 envs=$2 model=$3
  step "bench inference $label"
  env $envs timeout 150 "$bin" bench inference --model "$model" --runs 2 --json > "$out/b.json" 2> "$out/b.err"
  rc=$?
  echo "rc=$rc"; tail -2 "$out/b.err"
  python3 - "$label" "$out/b.json" <<'PY' | tee -a "$out/results.jsonl"
import json, sys
keys = ["backend", "layers", "layers_on_gpu", "load_s", "prompt_tokens", "time_to_first_token_ms",
        "prompt_tokens_per_s", "decode_tokens_per_s", "follow_up_time_to_first_token_ms", "peak_rss_bytes"]
try:
    r = json.load(open(sys.argv[2]))
    print(json.dumps({"label": sys.argv[1], **{k: r.get(k) for k in keys}}))
except Exception as e:
    print(json.dumps({"label": sys.argv[1], "error": str(e)}))
PY
}
# SmolLM2 with real and with zero weights: whether zero weights change the speed.
bench smollm2-gpu "" "$dir/smollm2.gguf"
bench zero-smollm2-gpu "" "$dir/zero-smollm2.gguf"
for m in 0.5b 1.5b 7b 32b 14b; do
  [ -f "$dir/qwen-$m.gguf" ] && bench "zero-qwen-$m-gpu" "" "$dir/qwen-$m.gguf"
done
nvidia-smi --query-gpu=memory.used --format=csv
bench smollm2-cpu CUDA_VISIBLE_DEVICES= "$dir/smollm2.gguf"
bench zero-smollm2-cpu CUDA_VISIBLE_DEVICES= "$dir/zero-smollm2.gguf"
for m in 0.5b 1.5b; do
  [ -f "$dir/qwen-$m.gguf" ] && bench "zero-qwen-$m-cpu" CUDA_VISIBLE_DEVICES= "$dir/qwen-$m.gguf"
done
step "done"
