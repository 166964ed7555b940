#!/usr/bin/env bash
# Fetch the browser-side third-party code the dashboard needs (noVNC) into vendor/web/.
#
# noVNC comes from Debian's `novnc` package, pinned. We only download and unpack the .deb:
# installing it would pull in nodejs and friends, and we need nothing but its ES modules.
#
# Result:
#   vendor/web/novnc/core/...          (noVNC's RFB client, ES modules; core/rfb.js is the entry)
#   vendor/web/novnc/vendor/pako/...   (zlib inflate used by core/)
#   vendor/web/novnc/COPYING           (Debian's copyright/licence file for the package)
#   vendor/web/novnc/.version          (the pinned version; makes re-runs a no-op)
#
# Idempotent; works from any cwd. vendor/ is gitignored: never commit what this fetches.
set -euo pipefail

NOVNC_VERSION="1:1.3.0-1"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo_root/vendor/web/novnc"

if [[ -f "$dest/.version" && "$(cat "$dest/.version")" == "$NOVNC_VERSION" && -f "$dest/core/rfb.js" ]]; then
    echo "fetch-web-deps: novnc $NOVNC_VERSION already in vendor/web/novnc"
    exit 0
fi

for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || { echo "fetch-web-deps: $tool not found (Debian/Ubuntu needed)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

download() {
    # apt-get download writes into the cwd; run it in a subshell so our cwd is untouched.
    # The _apt sandbox user may be unable to write into a root-owned mktemp dir: let it.
    chmod 0777 "$work"
    (cd "$work" && apt-get download -q "novnc=$NOVNC_VERSION")
}

if ! download; then
    echo "fetch-web-deps: download failed; running apt-get update and retrying" >&2
    apt-get update -q
    download
fi

deb="$(find "$work" -maxdepth 1 -name 'novnc_*.deb' | head -n 1)"
[[ -n "$deb" ]] || { echo "fetch-web-deps: no novnc .deb was downloaded" >&2; exit 1; }

got_version="$(dpkg-deb -f "$deb" Version)"
if [[ "$got_version" != "$NOVNC_VERSION" ]]; then
    echo "fetch-web-deps: expected novnc $NOVNC_VERSION, got $got_version" >&2
    exit 1
fi

dpkg-deb -x "$deb" "$work/root"
src="$work/root/usr/share/novnc"
for p in "$src/core/rfb.js" "$src/vendor/pako" "$work/root/usr/share/doc/novnc/copyright"; do
    [[ -e "$p" ]] || { echo "fetch-web-deps: $p missing from the package" >&2; exit 1; }
done

# Assemble in a staging dir next to the destination, then swap it in, so an interrupted run
# never leaves a half-filled vendor/web/novnc that looks complete.
mkdir -p "$repo_root/vendor/web"
stage="$(mktemp -d "$repo_root/vendor/web/.novnc.XXXXXX")"
trap 'rm -rf "$work" "$stage"' EXIT
mkdir -p "$stage/vendor"
# -L: Debian may ship some files as symlinks into other packages' dirs; copy real content.
cp -RL "$src/core" "$stage/core"
cp -RL "$src/vendor/pako" "$stage/vendor/pako"
cp -L "$work/root/usr/share/doc/novnc/copyright" "$stage/COPYING"
printf '%s\n' "$NOVNC_VERSION" > "$stage/.version"
chmod -R u+rwX,go+rX "$stage"

rm -rf "$dest"
mv "$stage" "$dest"
echo "fetch-web-deps: novnc $NOVNC_VERSION -> vendor/web/novnc ($(find "$dest" -type f | wc -l) files)"
