"""--scan-values: the only part of validation that reads tensor data.

Spec: spec/layout.md#LAY-7, spec/hazards.md#hazard.nonfinite, spec/hazards.md#hazard.vocab_mapping
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specfmt.files import open_regular
from specfmt.findings import Finding, finding, mismatch, pointer
from specfmt.safetensors_header import DTYPES, TensorInfo

CHUNK_BYTES = 64 << 20


def _torch():
    """torch, imported only when values are scanned (validation proper never needs it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # numpy is not used
        import torch
    return torch


def _torch_dtype(dtype: str):
    torch = _torch()

    return {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
            "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64,
            "BOOL": torch.bool}[dtype]


def read_tensor(root: Path, t: TensorInfo):
    """One tensor's data as a flat torch tensor (little-endian, as safetensors stores it)."""
    torch = _torch()

    with open_regular(root / t.file, t.file) as f:  # the one reader (specfmt.files)
        f.seek(t.start)
        data = bytearray(f.read(t.end - t.start))
    if not data:
        return torch.empty(0, dtype=_torch_dtype(t.dtype))
    return torch.frombuffer(data, dtype=_torch_dtype(t.dtype))


def _nonfinite_count(root: Path, t: TensorInfo) -> int:
    torch = _torch()

    width = DTYPES[t.dtype]["bytes"]
    step = max(width, CHUNK_BYTES - CHUNK_BYTES % width)
    bad = 0
    with open_regular(root / t.file, t.file) as f:  # the one reader (specfmt.files)
        for offset in range(t.start, t.end, step):
            f.seek(offset)
            chunk = bytearray(f.read(min(step, t.end - offset)))
            values = torch.frombuffer(chunk, dtype=_torch_dtype(t.dtype)).float()
            bad += int((~torch.isfinite(values)).sum())
    return bad


def scan(root: Path, found: dict[str, TensorInfo], read: set[str], symbols: dict[str, Any],
         progress: Callable[[str], None] | None = None) -> list[Finding]:
    """NaN or Inf in floating-point tensors, and d2t/t2d that do not describe one vocabulary subset. A tensor
    in `read` (bound to the layout, so the forward reads it) with no finite value is an error. `progress`, when
    given, receives a line naming each tensor before it is read. Spec: spec/layout.md#LAY-7"""
    out = []
    for i, name in enumerate(sorted(found), start=1):
        t = found[name]
        if progress is not None:
            progress(f"scanning {t.file}: tensor {i}/{len(found)} {name}")
        if DTYPES[t.dtype]["class"] in ("float", "float8"):
            bad, total = _nonfinite_count(root, t), (t.end - t.start) // DTYPES[t.dtype]["bytes"]
            if bad == total and total and name in read:
                out.append(finding("weights.nonfinite", t.file, pointer(name),
                                   mismatch(f"{name}, which the draft reads, holds no finite value",
                                            "finite values", f"{bad} of {total} NaN or Inf"), found=bad))
            elif bad:
                out.append(finding("hazard.nonfinite", t.file, pointer(name),
                                   mismatch(f"{name} holds NaN or Inf", "0 non-finite values", f"{bad} of {total}"),
                                   found=bad))
    out += _vocab_mapping(root, found, symbols)
    return out


def _vocab_mapping(root: Path, found: dict[str, TensorInfo], symbols: dict[str, Any]) -> list[Finding]:
    torch = _torch()

    d2t_info, t2d_info, V = found.get("d2t"), found.get("t2d"), symbols.get("V")
    if d2t_info is None or d2t_info.dtype != "I64" or not isinstance(V, int):
        return []
    d2t = read_tensor(root, d2t_info)
    target = torch.arange(d2t.numel()) + d2t  # target_id = draft_id + d2t[draft_id]
    out = []
    if d2t.numel() and (int(target.min()) < 0 or int(target.max()) >= V or bool((target[1:] <= target[:-1]).any())):
        out.append(finding("hazard.vocab_mapping", d2t_info.file, pointer("d2t"),
                           mismatch("d2t offsets must map draft ids to increasing target ids", f"in [0, {V})",
                                    [int(target.min()), int(target.max())])))
    elif t2d_info is not None and t2d_info.dtype == "BOOL" and t2d_info.shape == (V,):
        t2d = read_tensor(root, t2d_info)
        if not torch.equal(torch.nonzero(t2d).flatten(), target):
            out.append(finding("hazard.vocab_mapping", t2d_info.file, pointer("t2d"),
                               mismatch("t2d must mark exactly the target ids of d2t", d2t.numel(),
                                        int(t2d.sum()))))
    return out
