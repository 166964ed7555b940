#!/usr/bin/env bash
# Builds claworc: fetches and packs the dashboard's browser libraries, then swift build.
#   scripts/build.sh debug     development build (.build/debug/claworc), used by the tests
#   scripts/build.sh release   the shipped single binary (.build/release/claworc), size-tuned
set -euo pipefail
mode="${1:-debug}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-web-deps.sh
python3 scripts/pack-web.py

if [[ "$mode" == "release" ]]; then
    # Size flags measured in ../shared/research/swift-stack.md §1.2 (config E).
    swift build -c release --static-swift-stdlib \
        -Xswiftc -Osize -Xswiftc -Xfrontend -Xswiftc -function-sections \
        -Xcc -ffunction-sections -Xcc -fdata-sections \
        -Xswiftc -use-ld=lld -Xlinker --no-export-dynamic -Xlinker --icf=all \
        -Xlinker -z -Xlinker pack-relative-relocs
    strip .build/release/claworc
    echo "build: .build/release/claworc ($(stat -c %s .build/release/claworc) bytes)"
else
    swift build
fi
