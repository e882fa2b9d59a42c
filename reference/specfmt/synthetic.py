"""Random tensors for any config, generated from its layout document: fixtures, examples, benchmarks.

Floats are normal with standard deviation `std`; d2t/t2d describe a random sorted subset of the
verifier vocabulary (offsets, spec/algorithms/eagle3.md#ALG-EAGLE3-8).
"""

from __future__ import annotations

import torch

from specfmt.defaults import resolve
from specfmt.layout import expand


def random_tensors(config: dict, seed: int = 0, std: float = 0.02,
                   dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Every active tensor of `config`'s layout, by on-disk name."""
    resolved = resolve(config)
    symbols, expected, errors = expand(resolved["speculators_model_type"], resolved)
    if errors:
        raise ValueError(f"the layout does not evaluate on this config: {errors}")
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for e in expected:
        if not e.active or e.name in out:
            continue
        if e.dtype == "float":
            out[e.name] = (torch.randn(e.shape, generator=g) * std).to(dtype)
        elif e.name == "d2t":
            ids = torch.sort(torch.randperm(symbols["V"], generator=g)[: e.shape[0]]).values
            out[e.name] = ids - torch.arange(e.shape[0])  # offsets: target_id = draft_id + d2t[draft_id]
        elif e.name == "t2d":
            out[e.name] = torch.zeros(e.shape, dtype=torch.bool)
    if "t2d" in out:
        out["t2d"][torch.arange(out["d2t"].numel()) + out["d2t"]] = True
    return out
