"""Header-only safetensors files: a real header, data left as a sparse hole of zeros.

Used to build fixtures from tensor manifests and full-size benchmark files without writing weights.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from specfmt.safetensors_header import DTYPES


def header_bytes(entries: list[tuple[str, str, list[int]]], metadata: dict[str, str] | None = None) -> bytes:
    """The 8-byte length plus the JSON header for `entries` laid out contiguously in order."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, dtype, shape in entries:
        nbytes = math.prod(shape) * DTYPES[dtype]["bytes"]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to an 8-byte boundary
    return struct.pack("<Q", len(raw)) + raw


def data_bytes(entries: list[tuple[str, str, list[int]]]) -> int:
    return sum(math.prod(shape) * DTYPES[dtype]["bytes"] for _, dtype, shape in entries)


def write_sparse(path: str | Path, entries: list[tuple[str, str, list[int]]]) -> Path:
    """Write a valid safetensors file whose data is all zeros, stored as a hole where the OS allows."""
    path = Path(path)
    head = header_bytes(entries, {"format": "pt"})
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + data_bytes(entries))
    return path


def read_manifest(path: str | Path) -> list[tuple[str, str, list[int]]]:
    """Entries from a `name<TAB>[shape]<TAB>DTYPE` manifest (the corpus tensors.tsv format)."""
    entries = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shape, dtype = line.split("\t")
        entries.append((name, dtype, json.loads(shape)))
    return entries
