"""Writing safetensors files: from torch tensors, or header-only with the data left as a sparse hole.

Our own writer rather than safetensors.torch.save_file: it needs no numpy, and its output is a pure
function of the tensors (sorted names, contiguous data, header padded to 8 bytes), which is what makes
save -> load -> save byte-identical. Files it writes load with safetensors.safe_open.
Spec: spec/layout.md#SFT-2
"""

from __future__ import annotations

import ctypes
import json
import math
import struct
import sys
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


TORCH_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3",
                "float8_e5m2": "F8_E5M2", "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
                "uint8": "U8", "bool": "BOOL"}


def write_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Write `tensors` (name -> CPU torch tensor) in name order."""
    if sys.byteorder != "little":
        raise NotImplementedError("safetensors data is little-endian; this writer runs on little-endian hosts only")
    names = sorted(tensors)
    entries = [(n, TORCH_DTYPES[str(tensors[n].dtype).removeprefix("torch.")], list(tensors[n].shape)) for n in names]
    with open(path, "wb") as f:
        f.write(header_bytes(entries, metadata))
        for n in names:
            t = tensors[n].detach().cpu().contiguous()
            f.write(ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()))  # one memcpy, any dtype
    return Path(path)


def read_manifest(path: str | Path) -> list[tuple[str, str, list[int]]]:
    """Entries from a `name<TAB>[shape]<TAB>DTYPE` manifest (the corpus tensors.tsv format)."""
    entries = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shape, dtype = line.split("\t")
        entries.append((name, dtype, json.loads(shape)))
    return entries
