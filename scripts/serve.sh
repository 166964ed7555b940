#!/usr/bin/env bash
# Sets up a Debian 12 machine (with Swift) and runs `claworc serve`. Extra arguments go to
# `claworc serve`, e.g. scripts/serve.sh --listen 0.0.0.0:8080 --data-dir /srv/claworc
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh run
scripts/build.sh release
exec .build/release/claworc serve "$@"
