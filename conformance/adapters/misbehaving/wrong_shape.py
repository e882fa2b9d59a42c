"""Misbehaving adapter for the numerics level: writes every expected output with its first
dimension one too long (zeros), so the runner must fail the case on shape.

It reads the names, dtypes and shapes from the case's expected.safetensors, next to the inputs.
The operations it declares are its arguments (default: forward, propose, verify).
"""

import json
import math
import struct
import sys
from pathlib import Path

from _common import serve

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "BOOL": 1}


def read_header(path: Path) -> dict:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def write_zeros(path: Path, specs: dict) -> None:
    header, offset = {}, 0
    for name, (dtype, shape) in specs.items():
        size = math.prod(shape) * SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def wrong_shape(message: dict) -> None:
    expected = read_header(Path(message["inputs"]).parent / "expected.safetensors")
    specs = {name: (entry["dtype"], [entry["shape"][0] + 1, *entry["shape"][1:]] if entry["shape"] else [1])
             for name, entry in expected.items()}
    write_zeros(Path(message["outputs"]), specs)


if __name__ == "__main__":
    operations = sys.argv[1:] or ["forward", "propose", "verify"]
    sys.argv[1:] = []
    serve("misbehaving-wrong-shape", wrong_shape, levels=["numerics"], operations=operations, on_run=wrong_shape)
