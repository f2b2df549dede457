#!/usr/bin/env bash
# Checks that each patched crate in patches/ is exactly its published version plus our
# patches/<crate>.diff, so the .diff files are the whole of our change (what to review, and
# what to send upstream). Downloads the published crates from crates.io (a few MB, cached).
#   scripts/check-patches.sh            check
#   scripts/check-patches.sh --update   rewrite the .diff files from the trees (after a change)
set -euo pipefail
cd "$(dirname "$0")/.."

crates=("candle-core 0.10.2" "mistralrs-core 0.8.1")
cache="${XDG_CACHE_HOME:-$HOME/.cache}/perimeter-upstream-crates"
mkdir -p "$cache"
status=0
for entry in "${crates[@]}"; do
  read -r name version <<<"$entry"
  crate="$cache/$name-$version.crate"
  if [ ! -s "$crate" ]; then
    curl -sfL --retry 3 -o "$crate.part" "https://static.crates.io/crates/$name/$name-$version.crate"
    mv "$crate.part" "$crate"
  fi
  work=$(mktemp -d)
  tar -xzf "$crate" -C "$work"
  mv "$work/$name-$version" "$work/a"
  # Files cargo adds when it packages a crate, not part of the source.
  rm -f "$work/a/.cargo_vcs_info.json" "$work/a/Cargo.lock"
  if [ "${1:-}" = "--update" ]; then
    cp -r "patches/$name" "$work/b"
    # Without the file times, so an unchanged tree gives an unchanged .diff.
    (cd "$work" && diff -ruN a b | sed -E 's/^(---|\+\+\+) ([^\t]+)\t.*/\1 \2/' >"$OLDPWD/patches/$name.diff") || true
    echo "patches/$name.diff: $(grep -c '^@@' "patches/$name.diff") hunks"
  else
    (cd "$work/a" && patch -s -p1 <"$OLDPWD/patches/$name.diff")
    if diff -r "$work/a" "patches/$name" >"$work/difference"; then
      echo "patches/$name = $name $version + patches/$name.diff"
    else
      echo "error: patches/$name is not $name $version + patches/$name.diff:" >&2
      head -40 "$work/difference" >&2
      echo "(after changing the tree, run scripts/check-patches.sh --update)" >&2
      status=1
    fi
  fi
  rm -rf "$work"
done
exit $status
