#!/usr/bin/env bash
# Fetch the browser-side third-party code the dashboard needs (noVNC, xterm.js) into vendor/web/.
#
# noVNC comes from Debian's `novnc` package, pinned. We only download and unpack the .deb:
# installing it would pull in nodejs and friends, and we need nothing but its ES modules.
# xterm.js (4.x) and its fit addon come from the PyPI sdist of `webssh`, pinned by version and
# sha256 (no npm): only the three minified files and the package's licence are unpacked.
#
# Result:
#   vendor/web/novnc/core/...          (noVNC's RFB client, ES modules; core/rfb.js is the entry)
#   vendor/web/novnc/vendor/pako/...   (zlib inflate used by core/)
#   vendor/web/novnc/COPYING           (Debian's copyright/licence file for the package)
#   vendor/web/novnc/.version          (the pinned version; makes re-runs a no-op)
#   vendor/web/xterm/xterm.min.js, xterm-addon-fit.min.js, xterm.min.css, LICENSE, .version
#
#   vendor/web/marked/marked.umd.min.js, COPYING, .version     (Debian's libjs-marked, pinned)
#   vendor/web/dompurify/purify.es.js, COPYING, .version        (Debian's node-dompurify, pinned)
#
# Idempotent; works from any cwd. vendor/ is gitignored: never commit what this fetches.
set -euo pipefail

NOVNC_VERSION="1:1.3.0-1"
WEBSSH_VERSION="1.6.3"
WEBSSH_SHA256="2bce5bbaf206ad345910c7e4dc8024b3c418e681c9f5ff098f1802beff76e100"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

fetch_xterm() {
    local dest="$repo_root/vendor/web/xterm"
    if [[ -f "$dest/.version" && "$(cat "$dest/.version")" == "webssh==$WEBSSH_VERSION" && -f "$dest/xterm.min.js" ]]; then
        echo "fetch-web-deps: xterm.js (webssh $WEBSSH_VERSION) already in vendor/web/xterm"
        return 0
    fi
    local python
    python="$(command -v python3 || true)"
    [[ -n "$python" ]] && "$python" -m pip --version >/dev/null 2>&1 \
        || { echo "fetch-web-deps: python3 -m pip not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
    local work
    work="$(mktemp -d)"
    # The sdist only: no wheel, nothing installed, no dependency resolved.
    "$python" -m pip download -q --no-deps --no-binary :all: "webssh==$WEBSSH_VERSION" -d "$work" >&2
    local sdist="$work/webssh-$WEBSSH_VERSION.tar.gz"
    [[ -f "$sdist" ]] || { echo "fetch-web-deps: webssh sdist was not downloaded" >&2; rm -rf "$work"; exit 1; }
    local got
    got="$(sha256sum "$sdist" | cut -d' ' -f1)"
    if [[ "$got" != "$WEBSSH_SHA256" ]]; then
        echo "fetch-web-deps: webssh-$WEBSSH_VERSION.tar.gz has sha256 $got, expected $WEBSSH_SHA256" >&2
        rm -rf "$work"
        exit 1
    fi
    local top="webssh-$WEBSSH_VERSION"
    tar -xzf "$sdist" -C "$work" "$top/LICENSE" "$top/webssh/static/js/xterm.min.js" \
        "$top/webssh/static/js/xterm-addon-fit.min.js" "$top/webssh/static/css/xterm.min.css"
    mkdir -p "$repo_root/vendor/web"
    local stage
    stage="$(mktemp -d "$repo_root/vendor/web/.xterm.XXXXXX")"
    cp "$work/$top/webssh/static/js/xterm.min.js" "$work/$top/webssh/static/js/xterm-addon-fit.min.js" \
        "$work/$top/webssh/static/css/xterm.min.css" "$stage/"
    cp "$work/$top/LICENSE" "$stage/LICENSE"
    printf '%s\n' "webssh==$WEBSSH_VERSION" > "$stage/.version"
    chmod -R u+rwX,go+rX "$stage"
    rm -rf "$dest" "$work"
    mv "$stage" "$dest"
    echo "fetch-web-deps: xterm.js from webssh $WEBSSH_VERSION -> vendor/web/xterm"
}

# rjsmin and rcssmin (pure-Python JavaScript and CSS minifiers, pinned sdists from PyPI):
# scripts/pack-web.py minifies the dashboard's and noVNC's sources with them before gzip, which
# keeps the embedded dashboard about 75 KB smaller in the binary's 20 MiB budget.
MINIFIERS=("rjsmin 1.3.0 7c2ef57d55e2d76db0c0d0f7399c6c5efde995c677b190ba30fb94019f94a07e"
           "rcssmin 1.3.0 ff15a3890eb350f1aa9ec34998f914c4e2fb13f949496f7c25e807578281adcf")

fetch_minifiers() {
    local dest="$repo_root/vendor/tools"
    local want
    want="$(printf '%s\n' "${MINIFIERS[@]}")"
    if [[ -f "$dest/.version" && "$(cat "$dest/.version")" == "$want" ]]; then
        echo "fetch-web-deps: minifiers already in vendor/tools"
        return 0
    fi
    local work stage
    work="$(mktemp -d)"
    mkdir -p "$repo_root/vendor"
    stage="$(mktemp -d "$repo_root/vendor/.tools.XXXXXX")"
    for entry in "${MINIFIERS[@]}"; do
        read -r name version sha <<<"$entry"
        python3 -m pip download -q --no-deps --no-binary :all: "$name==$version" -d "$work" >&2
        local sdist="$work/$name-$version.tar.gz"
        local got
        got="$(sha256sum "$sdist" | cut -d' ' -f1)"
        if [[ "$got" != "$sha" ]]; then
            echo "fetch-web-deps: $name-$version.tar.gz has sha256 $got, expected $sha" >&2
            rm -rf "$work" "$stage"
            exit 1
        fi
        tar -xzf "$sdist" -C "$work" "$name-$version/$name.py" "$name-$version/LICENSE"
        cp "$work/$name-$version/$name.py" "$stage/$name.py"
        cp "$work/$name-$version/LICENSE" "$stage/$name.LICENSE"
    done
    printf '%s\n' "$want" > "$stage/.version"
    rm -rf "$dest" "$work"
    mv "$stage" "$dest"
    echo "fetch-web-deps: rjsmin and rcssmin -> vendor/tools"
}

# The chat renders the agent's markdown with marked, and sanitises marked's HTML with DOMPurify
# before it touches the page: both from Debian's packages at pinned versions (.debs from
# deb.debian.org, unpacked, never installed).
MARKED_VERSION="4.2.3+ds+~4.0.7-2"
DOMPURIFY_VERSION="2.4.1+dfsg+~2.4.0-2+deb12u2"

# fetch_deb PACKAGE VERSION DEST FILE... : FILE paths inside the package, copied flat into DEST
# with the package's copyright as COPYING.
fetch_deb() {
    local package="$1" version="$2" dest="$3"
    shift 3
    if [[ -f "$dest/.version" && "$(cat "$dest/.version")" == "$version" ]]; then
        echo "fetch-web-deps: $package $version already in ${dest#"$repo_root/"}"
        return 0
    fi
    local work
    work="$(mktemp -d)"
    chmod 0777 "$work"
    if ! (cd "$work" && apt-get download -q "$package=$version"); then
        apt-get update -q
        (cd "$work" && apt-get download -q "$package=$version")
    fi
    local deb
    deb="$(find "$work" -maxdepth 1 -name "${package}_*.deb" | head -n 1)"
    [[ -n "$deb" && "$(dpkg-deb -f "$deb" Version)" == "$version" ]] \
        || { echo "fetch-web-deps: $package $version was not downloaded" >&2; rm -rf "$work"; exit 1; }
    dpkg-deb -x "$deb" "$work/root"
    mkdir -p "$repo_root/vendor/web"
    local stage
    stage="$(mktemp -d "$repo_root/vendor/web/.$package.XXXXXX")"
    for file in "$@"; do
        cp -L "$work/root/$file" "$stage/" || { echo "fetch-web-deps: $file missing from $package" >&2; rm -rf "$work" "$stage"; exit 1; }
    done
    cp -L "$work/root/usr/share/doc/$package/copyright" "$stage/COPYING"
    printf '%s\n' "$version" > "$stage/.version"
    chmod -R u+rwX,go+rX "$stage"
    rm -rf "$dest" "$work"
    mv "$stage" "$dest"
    echo "fetch-web-deps: $package $version -> ${dest#"$repo_root/"}"
}

fetch_minifiers
fetch_xterm
fetch_deb libjs-marked "$MARKED_VERSION" "$repo_root/vendor/web/marked" usr/share/javascript/marked/marked.umd.min.js
fetch_deb node-dompurify "$DOMPURIFY_VERSION" "$repo_root/vendor/web/dompurify" usr/share/nodejs/dompurify/dist/purify.es.js

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
