#!/usr/bin/env bash
# Installs what Perimeter needs to build, run and test on Debian/Ubuntu, skipping what is
# already there. Sourced by scripts/start.sh and scripts/test.sh; safe to run again.
#   scripts/setup.sh           # build and run
#   scripts/setup.sh --tests   # also what the test suite needs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_tests=0
[ "${1:-}" = "--tests" ] && want_tests=1

# Keep the build outside the clone, so a fresh clone (CI) reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perimeter-target}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------
packages=(build-essential pkg-config libssl-dev
  libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libxdo-dev   # Tauri's WebKitGTK shell
  libdbus-1-dev                                                # the OS keychain (Secret Service)
  bubblewrap                                                   # agent mode's command sandbox
  nodejs npm python3 python3-pip unzip)
[ "$want_tests" = 1 ] && packages+=(xvfb webkit2gtk-driver util-linux strace ripgrep
  gnome-keyring dbus-daemon dbus-bin   # the window tests; the offline proofs; a real OS keychain
  curl patch                           # scripts/check-patches.sh
  golang-go cmake libboost-date-time-dev)   # the edit benchmark's Go and C++ exercises
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Tools installed some other way (pyenv's python3, nvm's node) count as present.
command -v node >/dev/null && command -v npm >/dev/null && missing=("${missing[@]/nodejs}") && missing=("${missing[@]/npm}")
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 && missing=("${missing[@]/python3}") && missing=("${missing[@]/python3-pip}")
read -r -a missing <<<"${missing[*]:-}"
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "error: Rust is not installed. Install it with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

# The app's window tests drive it through tauri-driver (crates.io), in front of WebKitWebDriver.
TAURI_DRIVER_VERSION=2.1.0
export TAURI_DRIVER="$HOME/.cache/tauri-driver/bin/tauri-driver"
if [ "$want_tests" = 1 ] && ! cargo install --list --root "$HOME/.cache/tauri-driver" 2>/dev/null | grep -q "^tauri-driver v$TAURI_DRIVER_VERSION:"; then
  say "installing tauri-driver $TAURI_DRIVER_VERSION (about a minute)"
  cargo install tauri-driver --version "$TAURI_DRIVER_VERSION" --locked --quiet --root "$HOME/.cache/tauri-driver"
fi

# --- front-end dependencies ----------------------------------------------------------------
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  say "installing the UI's npm packages"
  # `npm install`, not `npm ci`: npm 11 writes lock files without the other platforms'
  # optional packages of @tauri-apps/cli, which `npm ci` then refuses.
  (cd ui && npm install --no-fund --no-audit --loglevel=error)
fi
# The edit benchmark's JavaScript exercises run under jest and babel, installed once for all.
export PERIMETER_BENCH_JS_MODULES="$HOME/.cache/perimeter-bench/javascript/node_modules"
if [ "$want_tests" = 1 ] && ! cmp -s bench/edits/javascript/package-lock.json "$PERIMETER_BENCH_JS_MODULES/../package-lock.json"; then
  say "installing the edit benchmark's JavaScript test tools"
  js_tools="$(dirname "$PERIMETER_BENCH_JS_MODULES")"
  mkdir -p "$js_tools"
  cp bench/edits/javascript/package.json bench/edits/javascript/package-lock.json "$js_tools/"
  (cd "$js_tools" && npm ci --no-fund --no-audit --loglevel=error)
fi
# The shell embeds ui/dist when it compiles, so the UI is built first (a few seconds).
# Only when a source changed: a rebuilt ui/dist makes the shell recompile.
ui_sources=(ui/src ui/index.html ui/package.json ui/package-lock.json ui/vite.config.ts ui/svelte.config.js ui/tsconfig.json)
if [ ! -f ui/dist/index.html ] || [ -n "$(find "${ui_sources[@]}" -newer ui/dist/index.html -print -quit)" ]; then
  say "building the UI"
  (cd ui && npm run --silent build -- --logLevel error)
fi

# --- models -----------------------------------------------------------------------------------
say "checking the development model"
# The tests also run a real coding model (Qwen2.5-Coder-0.5B, 491 MB), the
# unsupported-architecture fixture, and both embedding models (MiniLM 91 MB, EmbeddingGemma 1.2 GB).
if [ "$want_tests" = 1 ]; then scripts/fetch-models.sh --all --real --embed --embed-gemma; else scripts/fetch-models.sh; fi
