#!/usr/bin/env bash
# Installs what Claworc needs from Debian (and, for the tests, PyPI). Idempotent.
#   scripts/install-deps.sh run    what `claworc serve` and its build need
#   scripts/install-deps.sh test   that, plus the test suite's tools
set -euo pipefail
mode="${1:-run}"

#   scripts/install-deps.sh bench  that, plus the peers the benchmarks compare against
# python3-pip: the build fetches xterm.js from a pinned PyPI sdist (scripts/fetch-web-deps.sh).
runtime=(libsqlite3-dev libssl-dev zlib1g-dev libseccomp-dev libstdc++-12-dev xvfb x11vnc chromium fonts-dejavu-core fonts-liberation
         iproute2 nftables util-linux python3-pip)
# user-mode-linux + busybox-static: real cgroup v2 limits are tested inside a UML guest
# (Tests/uml); gcc builds the conformance probe statically.
# xdotool: the take-control test reads the pointer position on an instance's X display
testing=(chromium-driver sqlite3 xdotool user-mode-linux busybox-static gcc libc6-dev)
# websockify: the peer bench/vnc_relay.py compares the daemon's VNC relay with
benchmarks=(bubblewrap hyperfine websockify)
packages=("${runtime[@]}")
[[ "$mode" == "test" || "$mode" == "bench" ]] && packages+=("${testing[@]}")
[[ "$mode" == "bench" ]] && packages+=("${benchmarks[@]}")

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ "$mode" == "test" || "$mode" == "bench" ]]; then
    # Selenium 4.52 needs a certifi newer than the package index has; 4.51 is verified.
    # cryptography: the passkey tests' software authenticator and the OpenClaw stand-in tests
    # (an independent Ed25519 check) sign with it (Debian: python3-cryptography).
    # schemathesis (the API fuzz, Tests/integration/test_api_fuzz.py) pinned: its checks and CLI change between releases.
    python3 -m pip install -q --disable-pip-version-check "pytest>=8" "selenium<4.52" "websocket-client>=1.6" requests \
        "cryptography>=38" "schemathesis==4.32.5"
fi
