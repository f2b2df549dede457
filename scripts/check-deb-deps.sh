#!/usr/bin/env bash
# Fails if a binary in the .deb needs a shared library that the .deb neither carries nor gets
# from a package in its Depends (or what those pull in): such a package would install on a
# clean system and then not start.
#   scripts/check-deb-deps.sh dist/Perimeter_0.1.0_amd64.deb
set -euo pipefail
deb="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work"

depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^$')
# Everything the declared packages bring with them (from the installed packages' own
# Depends, so it needs no apt lists), plus what every Debian system has.
closure=$(python3 - $depends libc6 libgcc-s1 <<'PY'
import subprocess, sys, re
seen, todo = set(), list(sys.argv[1:])
while todo:
    pkg = todo.pop()
    if pkg in seen:
        continue
    seen.add(pkg)
    out = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", pkg], capture_output=True, text=True)
    for alt in re.split(r"[,|]", out.stdout):
        name = re.sub(r"\(.*?\)|:any", "", alt).strip()
        if name:
            todo.append(name)
print("\n".join(sorted(seen)))
PY
)

status=0
# Libraries the package carries itself (perimeter-cuda: NVIDIA's runtime in /usr/lib/perimeter-cuda,
# found through the binaries' RUNPATH) are checked like the binaries, and cover what needs them.
bundled=$(find "$work/usr/lib" -name '*.so*' -type f 2>/dev/null || true)
for bin in "$work"/usr/bin/* $bundled; do
  for lib in $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    if grep -q "/$lib\$" <<<"$bundled"; then
      continue
    fi
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !found {print $NF; found = 1}')
    # dpkg knows a file by the path its package installed (/lib or /usr/lib: usrmerge).
    owner=""
    for candidate in "$path" "$(readlink -f "$path")" "${path/#\/usr\/lib/\/lib}" "${path/#\/lib/\/usr\/lib}"; do
      owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1 || true)
      [ -n "$owner" ] && break
    done
    if [ -z "$owner" ]; then
      echo "$(basename "$bin"): $lib is not from a Debian package here" >&2; status=1
    elif ! grep -qx "$owner" <<<"$closure"; then
      echo "$(basename "$bin"): $lib comes from $owner, which the .deb does not depend on" >&2; status=1
    fi
  done
done
[ "$status" = 0 ] && echo "$(basename "$deb"): every shared library is covered by Depends: $(echo $depends)"
exit $status
