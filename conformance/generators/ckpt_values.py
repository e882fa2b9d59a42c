"""Tensor values, which a validator reads only when asked (GEN-5; the case carries scan_values): a tensor
the draft reads with no finite value (LAY-7), some non-finite values, an all-NaN tensor that nothing reads,
and a d2t that maps no vocabulary subset. Data is real (ckpt.weights), with the broken values written in."""

from __future__ import annotations

from pathlib import Path

import torch

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, in_bfloat16, tiny_config, weights, write_config
from specfmt.safetensors_file import write_tensors

T1 = "blocks.0.layers.1.weight"
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


EAGLE3, MTP = in_bfloat16(variants.config_of("eagle3")), in_bfloat16(variants.config_of("mtp"))
# (id, description, profile, config, edit, targeted code)
VALUE_CASES = [
    ("clean", "a clean checkpoint with its values scanned (valid)", "strict", tiny_config(), lambda t: None, None),
    ("read-all-nan", "eagle3 saved before its NaN sentinels were copied from the verifier: embed_tokens and "
     "lm_head hold only NaN", "compat", EAGLE3, _fill(*NAN_SENTINELS), "weights.nonfinite"),
    ("read-all-inf.strict", "a tensor the medusa draft reads holds only +Inf, under strict", "strict", tiny_config(),
     _fill(T1, value=float("inf")), "weights.nonfinite"),
    ("read-one-inf", "a tensor the medusa draft reads holds one Inf among finite values (a warning)", "compat",
     tiny_config(), _one_inf, "hazard.nonfinite"),
    ("unread-all-nan", "an mtp draft stores the verifier's LM head full of NaN, as the MTP converter writes; nothing "
     "reads it (warnings)", "compat", MTP, _stray_nan_head, "hazard.nonfinite"),
    ("vocab-mapping", "eagle3 d2t offsets map the draft ids to decreasing verifier ids", "compat", EAGLE3,
     _decreasing_d2t, "hazard.vocab_mapping"),
]


def value_cases() -> list[CheckpointCase]:
    return [CheckpointCase(f"ckpt.values.{case_id}", description, profile, _written(config, edit), code,
                           ("spec/layout.md#LAY-7",) if code is None else (), scan_values=True)
            for case_id, description, profile, config, edit, code in VALUE_CASES]
