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
    # libstdc++ (the Swift runtime's only C++ dependency) linked statically: every instance's
    # init is an exec of this binary, and loading and relocating libstdc++.so was a fifth of
    # its start-up (docs/performance.md). The Swift driver asks for -lstdc++; a linker script
    # of that name found first on the search path points it at the static archive.
    archive="$(clang -print-file-name=libstdc++.a 2>/dev/null || true)"
    static_cxx=()
    if [[ "$archive" == /* && -f "$archive" ]]; then
        mkdir -p .build/link-shims
        echo "INPUT($archive)" > .build/link-shims/libstdc++.so
        static_cxx=(-Xlinker -L"$PWD/.build/link-shims")
    else
        echo "build: libstdc++.a not found (install libstdc++-12-dev); linking libstdc++ dynamically" >&2
    fi
    # No unwind tables: nothing in this process unwinds (Swift errors are returns, the Swift
    # runtime and our C are built without exceptions, no thread is cancelled), and
    # .eh_frame + .eh_frame_hdr were 2.8 MiB of the 20 MiB budget. Crash backtraces follow
    # frame pointers, which Swift keeps. docs/performance.md, "Binary".
    mkdir -p .build/link-shims
    echo 'SECTIONS { /DISCARD/ : { *(.eh_frame) } } INSERT AFTER .text;' > .build/link-shims/no-unwind-tables.ld
    # Size flags measured in ../shared/research/swift-stack.md §1.2 (config E); no $ORIGIN
    # run path (the init is exec'd from a memfd, where $ORIGIN means "/").
    # -enforce-exclusivity=unchecked drops the run-time exclusivity checks (the compile-time
    # ones stay), 45 KB; lld's -O2 merges string tails, 4 KB: docs/performance.md, "Binary".
    swift build -c release --static-swift-stdlib --disable-local-rpath \
        -Xswiftc -Osize -Xswiftc -Xfrontend -Xswiftc -function-sections -Xswiftc -enforce-exclusivity=unchecked \
        -Xcc -ffunction-sections -Xcc -fdata-sections \
        -Xswiftc -use-ld=lld -Xlinker --no-export-dynamic -Xlinker --icf=all -Xlinker -O2 \
        -Xlinker -z -Xlinker pack-relative-relocs "${static_cxx[@]}" \
        -Xlinker --no-eh-frame-hdr -Xlinker "$PWD/.build/link-shims/no-unwind-tables.ld"
    strip .build/release/claworc
    echo "build: .build/release/claworc ($(stat -c %s .build/release/claworc) bytes)"
else
    swift build
fi
