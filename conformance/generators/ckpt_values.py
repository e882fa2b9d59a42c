"""Tensor values, which a validator reads only when asked (GEN-5; the case carries scan_values): a tensor
the draft reads with no finite value (LAY-7), some non-finite values, an all-NaN tensor that nothing reads,
a d2t that maps no vocabulary subset, and a t2d that does not mark d2t's targets exactly (ALG-EAGLE3-8). Data is
real (ckpt.weights), with the broken values written in."""

from __future__ import annotations

from pathlib import Path

import torch

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, in_bfloat16, weights, write_config
from conformance.generators.ckpt_bytes import T1, byte_config
from specfmt.safetensors_file import write_tensors

NAN_SENTINELS = ("embed_tokens.weight", "lm_head.weight")  # what speculators fills with NaN until it copies them


def _written(config: dict, edit):
    """A build: `config` and its weights edited by `edit(tensors)`, written without validation (save refuses
    what these cases break)."""
    def build(path: Path) -> None:
        tensors = weights(config)
        edit(tensors)
        write_tensors(write_config(path, config) / "model.safetensors", tensors, {"format": "pt"})
    return build


def _fill(*names: str, value: float = float("nan")):
    def edit(tensors: dict[str, torch.Tensor]) -> None:
        for name in names:
            tensors[name] = torch.full_like(tensors[name], value)
    return edit


def _one_inf(tensors: dict[str, torch.Tensor]) -> None:
    tensors[T1] = tensors[T1].clone()
    tensors[T1][3, 5] = float("inf")


def _stray_nan_head(tensors: dict[str, torch.Tensor]) -> None:
    tensors["verifier_lm_head.weight"] = torch.full((variants.V, variants.H), float("nan"), dtype=torch.bfloat16)


def _decreasing_d2t(tensors: dict[str, torch.Tensor]) -> None:
    tensors["d2t"] = torch.zeros_like(tensors["d2t"])  # every draft id maps to itself: not increasing over t2d
    tensors["d2t"][1:] = -1


def _moved_t2d(tensors: dict[str, torch.Tensor]) -> None:
    """d2t stays a valid mapping; t2d marks one id beside its targets instead of the first target (the same count,
    so only an exact comparison of the two sets catches it)."""
    t2d = tensors["t2d"].clone()
    first, other = int(torch.nonzero(t2d)[0]), int(torch.nonzero(~t2d)[0])
    t2d[first], t2d[other] = False, True
    tensors["t2d"] = t2d


EAGLE3, MTP = in_bfloat16(variants.config_of("eagle3")), in_bfloat16(variants.config_of("mtp"))
LAY_7, EAGLE3_8 = ("spec/layout.md#LAY-7",), ("spec/algorithms/eagle3.md#ALG-EAGLE3-8",)
# (id, description, profile, config, edit, targeted code, anchors besides the code's)
VALUE_CASES = [
    ("clean", "a clean checkpoint with its values scanned (valid)", "strict", byte_config(), lambda t: None, None,
     LAY_7),
    ("read-all-nan", "eagle3 saved before its NaN sentinels were copied from the verifier: embed_tokens and "
     "lm_head hold only NaN", "compat", EAGLE3, _fill(*NAN_SENTINELS), "weights.nonfinite", ()),
    ("read-all-inf.strict", "a tensor the eagle3 draft reads holds only +Inf, under strict", "strict", byte_config(),
     _fill(T1, value=float("inf")), "weights.nonfinite", ()),
    ("read-one-inf", "a tensor the eagle3 draft reads holds one Inf among finite values (a warning)", "compat",
     byte_config(), _one_inf, "hazard.nonfinite", ()),
    ("unread-all-nan", "an mtp draft stores the verifier's LM head full of NaN, as the MTP converter writes; nothing "
     "reads it (warnings)", "compat", MTP, _stray_nan_head, "hazard.nonfinite", ()),
    ("vocab-mapping", "eagle3 d2t offsets map the draft ids to decreasing verifier ids", "compat", EAGLE3,
     _decreasing_d2t, "hazard.vocab_mapping", ()),
    ("vocab-mapping-t2d", "eagle3 d2t maps the draft ids to increasing verifier ids, but t2d marks one id that is no "
     "target instead of a target: hazard.vocab_mapping at /t2d (ALG-EAGLE3-8)", "compat", EAGLE3, _moved_t2d,
     "hazard.vocab_mapping", EAGLE3_8),
]


def value_cases() -> list[CheckpointCase]:
    return [CheckpointCase(f"ckpt.values.{case_id}", description, profile, _written(config, edit), code, spec,
                           scan_values=True)
            for case_id, description, profile, config, edit, code, spec in VALUE_CASES]
