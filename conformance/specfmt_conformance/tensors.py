"""A minimal safetensors reader of our own, for golden and produced tensors (standard library only).

Format: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
with an optional "__metadata__" entry, then the data buffer; offsets are relative to the buffer.
Floating dtypes are widened to Python floats (BF16 and F16 exactly), integers to ints and BOOL to bools.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

# dtype -> (struct code, item size); BF16 is widened through F32 (its top 16 bits).
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("d", 8), "F32": ("f", 4), "F16": ("e", 2), "BF16": ("f", 2),
    "I64": ("q", 8), "I32": ("i", 4), "BOOL": ("?", 1),
}
INTEGER_DTYPES = frozenset({"I64", "I32", "BOOL"})
HEADER_MAX_BYTES = 100_000_000


class TensorFileError(ValueError):
    """A file that is not a readable safetensors file of the supported dtypes."""


@dataclass(frozen=True)
class Tensor:
    """One tensor: dtype as written, shape, and its values flattened in row-major order."""

    dtype: str
    shape: tuple[int, ...]
    values: list

    @property
    def is_integer(self) -> bool:
        return self.dtype in INTEGER_DTYPES


def _decode(dtype: str, raw: bytes, count: int) -> list:
    code, size = DTYPES[dtype]
    if dtype == "BF16":
        widened = bytearray(4 * count)  # little-endian bf16 bytes are the high half of an f32
        widened[2::4] = raw[0::2]
        widened[3::4] = raw[1::2]
        raw = bytes(widened)
    values = list(struct.unpack(f"<{count}{code}", raw))
    return [float(v) for v in values] if code in "def" else values


def _entry(name: str, entry: object, buffer_len: int) -> tuple[str, tuple[int, ...], int, int]:
    if not isinstance(entry, dict):
        raise TensorFileError(f"{name}: header entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise TensorFileError(f"{name}: unsupported dtype {json.dumps(dtype)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise TensorFileError(f"{name}: shape is not a list of non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise TensorFileError(f"{name}: data_offsets is not a pair of integers")
    start, end = offsets
    expected = math.prod(shape) * DTYPES[dtype][1]
    if not 0 <= start <= end <= buffer_len or end - start != expected:
        raise TensorFileError(f"{name}: data_offsets {offsets} do not hold {expected} bytes "
                              f"inside a {buffer_len}-byte buffer")
    return dtype, tuple(shape), start, end


def read_tensors(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of the safetensors file at `path`, by name."""
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise TensorFileError(f"cannot read {path}: {e.strerror}") from e
    if len(blob) < 8:
        raise TensorFileError(f"{path}: file too short for the header length")
    (length,) = struct.unpack("<Q", blob[:8])
    if length > HEADER_MAX_BYTES or 8 + length > len(blob):
        raise TensorFileError(f"{path}: header length {length} is out of bounds")
    try:
        header = json.loads(blob[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TensorFileError(f"{path}: header is not JSON ({e})") from e
    if not isinstance(header, dict):
        raise TensorFileError(f"{path}: header is not a JSON object")
    buffer = blob[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, start, end = _entry(name, entry, len(buffer))
        tensors[name] = Tensor(dtype, shape, _decode(dtype, buffer[start:end], math.prod(shape)))
    return tensors
