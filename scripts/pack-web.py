#!/usr/bin/env python3
"""Pack the dashboard into Sources/CAssets/assets.bin (linked into the binary by blob.S).

Inputs (paths are relative to the repo root, found from this script's location):
  Sources/Appliance/Dashboard/**   served as  <relative path>          e.g. app.js
  vendor/web/**                    served as  vendor/<relative path>   e.g. vendor/novnc/core/rfb.js
                                   (run scripts/fetch-web-deps.sh first)

Format of assets.bin:
  0..3   ASCII "CLWA"
  4..7   little-endian uint32 N, the length of the index
  8..    N bytes of UTF-8 JSON: an array sorted by path of
         {"path": str, "offset": int, "length": int, "etag": str}
         offset counts from the first byte after the index; length is the gzip'd size;
         etag is the first 16 hex chars of the sha256 of the uncompressed file.
  then   every file's data, gzip level 9, mtime 0, no file name, in index order.

The output is byte-for-byte reproducible. Afterwards the first line of blob.S is set to a
comment naming the sha256 of assets.bin: SwiftPM does not track .incbin inputs, so the change
to blob.S is what makes it re-assemble. blob.S is only rewritten when that hash changed.

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

MAGIC = b"CLWA"
REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO_ROOT / "Sources" / "Appliance" / "Dashboard"
VENDOR_DIR = REPO_ROOT / "vendor" / "web"
OUT_BIN = REPO_ROOT / "Sources" / "CAssets" / "assets.bin"
BLOB_S = REPO_ROOT / "Sources" / "CAssets" / "blob.S"
HASH_PREFIX = "/* assets.bin sha256: "
HASH_SUFFIX = " */"

# Editor and OS droppings that must never be served.
IGNORED_NAMES = {".DS_Store", "Thumbs.db"}
IGNORED_SUFFIXES = ("~", ".swp", ".swo", ".orig", ".rej")


def collect(root: Path, prefix: str) -> dict[str, Path]:
    """Map served path -> file for every regular file under root (symlinks followed)."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES):
                continue
            full = Path(dirpath) / name
            if not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            found[prefix + rel] = full
    return found


TOOLS_DIR = REPO_ROOT / "vendor" / "tools"


def minified(path: str, raw: bytes) -> bytes:
    """JavaScript and CSS without comments and layout whitespace (rjsmin, rcssmin: fetched by
    scripts/fetch-web-deps.sh), JSON compact; already minified files and everything else as
    they are."""
    if path.endswith(".json"):
        # The API document: written indented for people, served compact.
        return json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if path.endswith((".min.js", ".min.css")) or not path.endswith((".js", ".css")):
        return raw
    if str(TOOLS_DIR) not in sys.path:
        sys.path.insert(0, str(TOOLS_DIR))
    try:
        import rcssmin
        import rjsmin
    except ImportError as e:
        raise SystemExit(f"pack-web: the minifiers are missing from {TOOLS_DIR} (run scripts/fetch-web-deps.sh): {e}")
    text = raw.decode("utf-8")
    out = rjsmin.jsmin(text) if path.endswith(".js") else rcssmin.cssmin(text)
    return out.encode("utf-8")


def build(dashboard: Path, vendor: Path) -> tuple[bytes, list[dict]]:
    files = collect(dashboard, "")
    vendored = collect(vendor, "vendor/")
    clash = sorted(set(files) & set(vendored))
    if clash:
        raise SystemExit(f"pack-web: served paths defined twice: {clash}")
    files.update(vendored)
    if not files:
        raise SystemExit(f"pack-web: nothing to pack under {dashboard} or {vendor}")

    index: list[dict] = []
    chunks: list[bytes] = []
    offset = 0
    for path in sorted(files):
        raw = minified(path, files[path].read_bytes())
        packed = gzip.compress(raw, compresslevel=9, mtime=0)
        index.append({
            "path": path,
            "offset": offset,
            "length": len(packed),
            "etag": hashlib.sha256(raw).hexdigest()[:16],
        })
        chunks.append(packed)
        offset += len(packed)

    index_bytes = json.dumps(index, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    blob = MAGIC + struct.pack("<I", len(index_bytes)) + index_bytes + b"".join(chunks)
    return blob, index


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def stamp_blob_s(blob_s: Path, digest: str) -> bool:
    """Put `digest` in blob.S's first-line comment; True if the file was rewritten."""
    text = blob_s.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    first = HASH_PREFIX + digest + HASH_SUFFIX + "\n"
    if lines and lines[0].startswith(HASH_PREFIX):
        if lines[0] == first:
            return False
        lines[0] = first
    else:
        lines.insert(0, first)
    return write_if_changed(blob_s, "".join(lines).encode("utf-8"))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dashboard", type=Path, default=DASHBOARD_DIR)
    ap.add_argument("--vendor", type=Path, default=VENDOR_DIR)
    ap.add_argument("--out", type=Path, default=OUT_BIN)
    ap.add_argument("--blob-s", type=Path, default=BLOB_S)
    ap.add_argument("--allow-missing-vendor", action="store_true",
                    help="pack even without vendor/web/novnc (the instance page then has no viewer)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    if not (args.vendor / "novnc" / "core" / "rfb.js").is_file():
        msg = f"{args.vendor}/novnc/core/rfb.js is missing; run scripts/fetch-web-deps.sh first"
        if not args.allow_missing_vendor:
            print(f"pack-web: error: {msg}", file=sys.stderr)
            return 1
        print(f"pack-web: warning: {msg}", file=sys.stderr)

    blob, index = build(args.dashboard, args.vendor)
    digest = hashlib.sha256(blob).hexdigest()
    wrote_bin = write_if_changed(args.out, blob)
    wrote_s = stamp_blob_s(args.blob_s, digest)
    if not args.quiet:
        print(f"pack-web: {len(index)} files, {len(blob)} bytes, sha256 {digest[:16]}… "
              f"(assets.bin {'written' if wrote_bin else 'unchanged'}, "
              f"blob.S {'updated' if wrote_s else 'unchanged'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
