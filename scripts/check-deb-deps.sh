#!/usr/bin/env bash
# Fails if a binary in the .deb needs a shared library that no package in the .deb's
# Depends (or what those pull in) provides: such a package would install on a clean system
# and then not start.
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
for bin in "$work"/usr/bin/*; do
  for lib in $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
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
