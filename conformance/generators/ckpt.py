"""Checkpoint-level cases: what one case is, how it is written, and the tensors and raw files the
case generators build checkpoints from.

A case's expected findings are what specfmt.validate reports on the checkpoint it built, under its
profile; the generator refuses a case whose targeted code the reference does not report.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from conformance.generators import variants
from conformance.generators.common import CHECKPOINT, CHECKPOINT_DIR, anchors, expected, fresh_dir, write_json
from specfmt import validate
from specfmt.defaults import resolve
from specfmt.layout import expand
from specfmt.schemas import SAFETENSORS, VERSION

CLASS_DTYPE = {"int64": "I64", "bool": "BOOL"}  # the float class takes the config's dtype


@dataclass(frozen=True)
class CheckpointCase:
    """One case: `build(path)` creates the checkpoint directory at `path`."""

    id: str
    description: str
    profile: str
    build: Callable[[Path], object]
    target: str | None  # the code the case is about; None for a checkpoint that must be valid
    spec: tuple[str, ...] = ()
    scan_values: bool = False  # validate reading tensor data too (GEN-5, LAY-7)


def write_case(case: CheckpointCase, suite: Path) -> dict:
    """Build the case under `suite`, validate it with the reference and write case.json; its manifest entry."""
    rel = CHECKPOINT_DIR / case.id
    case_dir = fresh_dir(suite / rel)
    case.build(case_dir / CHECKPOINT)
    report = validate(case_dir / CHECKPOINT, case.profile, scan_values=case.scan_values)
    codes = sorted({f.code for f in report.findings})
    if case.target is None and not report.ok:
        raise AssertionError(f"{case.id}: expected a valid checkpoint, got {report.codes()}")
    if case.target is not None and case.target not in codes:
        raise AssertionError(f"{case.id}: expected {case.target}, got {report.codes()}")
    write_json(case_dir / "case.json", {
        "id": case.id, "description": case.description, "since": VERSION,
        "spec": anchors(*case.spec, codes=codes), "profile": case.profile, "checkpoint": CHECKPOINT,
        **({"scan_values": True} if case.scan_values else {}),
        "valid": report.ok, "findings": expected(report, case_dir / CHECKPOINT)})
    return {"id": case.id, "level": "checkpoint", "path": rel.as_posix(), "since": VERSION,
            **({"algorithm": report.algorithm} if report.algorithm else {})}


def weights(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor of `config`'s layout, floats in the config's dtype as multiples of 1/256 in [-1/32, 1/32].

    Names, shapes and the vocab mapping come from variants.tensors_for; the floats are drawn with
    randint, whose bits are the same on every CPU (randn's differ between its AVX2 and scalar paths).
    """
    tensors = variants.tensors_for(config, seed)
    g = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, config["dtype"])  # float32, float16, bfloat16 or float64
    return {name: (torch.randint(-8, 9, t.shape, generator=g) / 256).to(dtype) if t.is_floating_point() else t
            for name, t in sorted(tensors.items())}


def entries(config: dict) -> list[tuple[str, str, list[int]]]:
    """The header entries (name, dtype, shape) of every active tensor of `config`'s layout."""
    resolved = resolve(config)
    _, expected_tensors, errors = expand(resolved["speculators_model_type"], resolved)
    if errors:
        raise ValueError(errors)
    float_dtype = SAFETENSORS["config_dtypes"][resolved["dtype"]]
    seen: dict[str, tuple[str, str, list[int]]] = {}
    for e in expected_tensors:
        if e.active and e.name not in seen:
            seen[e.name] = (e.name, CLASS_DTYPE.get(e.dtype, float_dtype), e.shape)
    return sorted(seen.values())


def write_config(path: Path, config) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / "config.json", config)
    return path


def write_raw(path: Path, header: dict | bytes, data_len: int, declared_len: int | None = None) -> None:
    """A safetensors file with a hand-made header (bytes, or an object written compactly) and zero data."""
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    length = len(raw) if declared_len is None else declared_len
    path.write_bytes(struct.pack("<Q", length) + raw + b"\0" * data_len)


def header(rows: list[tuple[str, str, list[int], list[int]]]) -> dict:
    """A header object from (name, dtype, shape, data_offsets) rows, with the usual metadata."""
    out: dict = {"__metadata__": {"format": "pt"}}
    for name, dtype, shape, offsets in rows:
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
    return out


def in_bfloat16(config: dict) -> dict:
    """`config` declaring bfloat16 weights, as most published drafts do: half the bytes of float32."""
    return {**config, "dtype": "bfloat16"}


def tiny_config() -> dict:
    """The smallest strict checkpoint, the base of the byte-level cases: the medusa_shared_head
    variant with one head at hidden size 16, two [16, 16] float32 tensors."""
    config = variants.config_of("medusa_shared_head")
    config["medusa_num_heads"] = 1
    config["speculators_config"]["verifier"]["hidden_size"] = 16
    return config
