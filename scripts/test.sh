#!/usr/bin/env bash
# Sets up a Debian 12 machine (with Swift) and runs the whole test suite, as root:
# Swift unit tests, then the integration suite against the real daemon, real namespaces,
# real Xvfb/x11vnc/Chromium and a real headless Chromium driving the dashboard.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "$(id -u)" != 0 ]]; then
    echo "test.sh: the suite creates namespaces and mounts; run it as root" >&2
    exit 1
fi
scripts/install-deps.sh test
scripts/build.sh debug
swift build --build-tests
swift test --skip-build
python3 -m pytest -p no:cacheprovider Tests/integration Tests/conformance Tests/uml -v
