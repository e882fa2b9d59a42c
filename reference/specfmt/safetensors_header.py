"""A bounded safetensors header parser of our own: it reads 8 bytes plus the header, never the data.

Spec: spec/layout.md#SFT-2, spec/layout.md#SFT-4
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass

from specfmt import json_text
from specfmt.findings import Finding, finding, mismatch, pointer
from specfmt.schemas import SAFETENSORS

DTYPES: dict[str, dict] = SAFETENSORS["dtypes"]
HEADER_MAX_BYTES: int = SAFETENSORS["header_max_bytes"]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as its header describes it; `start` and `end` are absolute file offsets."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    start: int
    end: int


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_header(path: str, file: str) -> tuple[list[TensorInfo] | None, list[Finding], list[str]]:
    """Parse the header of the safetensors file at `path`, reported as `file`.

    Returns the well-formed tensor entries, every finding and the names of the malformed entries;
    a malformed entry is reported and left out, so later checks see only what could be read, and
    its name counts as stored (LAY-3). The entries are None when the header itself cannot be read.
    """
    from specfmt.files import open_regular

    try:
        with open_regular(path, file) as f:
            return read_open_header(f, os.fstat(f.fileno()).st_size, file)
    except OSError as e:  # a FileRefused (not a regular file, a symlink loop) or a failed read
        message = e.finding.message if hasattr(e, "finding") else f"cannot read the file: {e.strerror}"
        return None, [finding("header.truncated", file, "", message)], []


def read_open_header(f, size: int, file: str) -> tuple[list[TensorInfo] | None, list[Finding], list[str]]:
    """read_header of a file already open (at its start) whose size is `size`: the header is read once, from the
    descriptor that the data will be read from."""
    def err(code: str, ptr: str, message: str, **kw) -> Finding:
        return finding(code, file, ptr, message, **kw)

    prefix = f.read(8)
    if len(prefix) < 8:
        return None, [err("header.truncated", "", mismatch("file too short for the header length",
                                                             ">= 8 bytes", f"{size} bytes"))], []
    (length,) = struct.unpack("<Q", prefix)
    if length > HEADER_MAX_BYTES:
        return None, [err("header.length", "", mismatch("header length over the bound",
                                                          f"<= {HEADER_MAX_BYTES}", length))], []
    if 8 + length > size:
        return None, [err("header.length", "", mismatch("header length past the end of the file",
                                                          f"<= {size - 8}", length))], []
    raw = f.read(length)
    try:
        header = json_text.parse(raw, "header")
    except json_text.JsonProblem as e:
        if e.kind == "duplicate_key":  # at the first repeated member in the text, a key inside an entry included
            return None, [err("header.duplicate", pointer(*e.path), f"key {e.key!r} appears twice in its object")], []
        return None, [err("header.json", "", str(e))], []
    if not isinstance(header, dict):
        return None, [err("header.json", "", mismatch("header is not an object", "object", type(header).__name__))], []
    return _entries(header, file, size, 8 + length, err)


def _entries(header: dict, file: str, size: int, data_start: int, err
             ) -> tuple[list[TensorInfo], list[Finding], list[str]]:
    findings: list[Finding] = []
    tensors: list[TensorInfo] = []
    malformed: list[str] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not (isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values())):
                findings.append(err("header.metadata", pointer(name), "__metadata__ must map strings to strings"))
            continue
        info, problems = _entry(name, entry, file, data_start, err)
        findings += problems
        if info is not None:
            tensors.append(info)
        else:
            malformed.append(name)
    findings += _check_offsets(tensors, size, data_start, err)
    return tensors, findings, malformed


def _entry(name: str, entry: object, file: str, data_start: int, err) -> tuple[TensorInfo | None, list[Finding]]:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        return None, [err("header.entry", pointer(name), "entry must be an object with dtype, shape, data_offsets")]
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        return None, [err("header.entry", pointer(name, "shape"),
                          mismatch("shape", "a list of non-negative integers", shape))]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        return None, [err("header.offsets", pointer(name, "data_offsets"),
                          mismatch("data_offsets", "[begin, end] with 0 <= begin <= end", offsets))]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        return None, [err("header.dtype", pointer(name, "dtype"),
                          mismatch("dtype outside the safetensors profile", sorted(DTYPES), dtype))]
    nbytes = math.prod(shape) * DTYPES[dtype]["bytes"]
    problems = []
    if offsets[1] - offsets[0] != nbytes:
        problems.append(err("header.size", pointer(name, "data_offsets"),
                            mismatch("byte range does not match shape and dtype", nbytes, offsets[1] - offsets[0],
                                     f"{shape} x {DTYPES[dtype]['bytes']} bytes")))
    info = TensorInfo(name, dtype, tuple(shape), file, data_start + offsets[0], data_start + offsets[1])
    return info, problems


def _check_offsets(tensors: list[TensorInfo], size: int, data_start: int, err) -> list[Finding]:
    """The byte buffer is covered exactly: sorted ranges, no overlap, no gap, no tail.

    Spec: spec/layout.md#SFT-4
    """
    findings = []
    cursor = data_start
    for t in sorted(tensors, key=lambda t: (t.start, t.end)):
        here = pointer(t.name, "data_offsets")
        if t.start > cursor:
            findings.append(err("header.offsets", here, mismatch("gap before the tensor's bytes",
                                                                 cursor - data_start, t.start - data_start)))
        elif t.start < cursor:
            findings.append(err("header.offsets", here, mismatch("byte range overlaps the previous tensor",
                                                                 cursor - data_start, t.start - data_start)))
        cursor = max(cursor, t.end)
    if cursor > size:
        findings.append(err("header.truncated", "", mismatch("file ends before the data the header describes",
                                                             f"{cursor} bytes", f"{size} bytes")))
    elif cursor < size:
        findings.append(err("header.offsets", "", mismatch("bytes after the last tensor",
                                                           f"{cursor} bytes", f"{size} bytes")))
    return findings
