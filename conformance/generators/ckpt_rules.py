"""Checkpoint cases for rules the generic cases do not reach: the layout rules of one algorithm page, on a
header-only checkpoint of that algorithm with one difference each from its layout document (ckpt_layout.py tests
the generic codes), and GEN-5's value checks left out when values are not scanned."""

from __future__ import annotations

import torch

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, in_bfloat16, write_config
from conformance.generators.ckpt_layout import EAGLE3, TINY, H, V, _eagle3_two_layers, _sparse, _swap
from conformance.generators.ckpt_values import NAN_SENTINELS, _fill, _written

EAGLE3_PAGE, MEDUSA_PAGE = "spec/algorithms/eagle3.md", "spec/algorithms/medusa.md"
EAGLE_PAGE = "spec/algorithms/eagle.md"


def _of(variant: str) -> dict:
    return in_bfloat16(variants.config_of(variant))


def _added(name: str, shape: list[int], dtype: str = "BF16"):
    return lambda e: e + [(name, dtype, shape)]


def _without(name: str):
    return lambda e: [r for r in e if r[0] != name]


# (case id, description, profile, config, edit of the layout's entries, targeted code or None, extra anchors)
CASES = [
    ("ckpt.eagle3.lm-head-absent", "eagle3 without lm_head.weight, which is required in both profiles", "compat",
     EAGLE3, _without("lm_head.weight"), "layout.missing", (f"{EAGLE3_PAGE}#ALG-EAGLE3-9",)),
    ("ckpt.eagle3.embed-tokens-absent", "eagle3 without embed_tokens.weight, which is optional (valid)", "strict",
     EAGLE3, _without("embed_tokens.weight"), None, (f"{EAGLE3_PAGE}#ALG-EAGLE3-9",)),
    ("ckpt.eagle3.mask-hidden", "eagle3 storing peagle's mask_hidden, a name outside its layout", "compat", EAGLE3,
     lambda e: e + [("mask_hidden", "BF16", [H])], "layout.unexpected", (f"{EAGLE3_PAGE}#ALG-EAGLE3-10",)),
    ("ckpt.eagle3.verifier-lm-head", "eagle3 storing the training-only verifier_lm_head.weight, a name the layout "
     "lists as forbidden", "compat", EAGLE3, lambda e: e + [("verifier_lm_head.weight", "BF16", [V, H])],
     "hazard.stray_verifier_tensor", (f"{EAGLE3_PAGE}#ALG-EAGLE3-10", "spec/layout.md#LAY-1")),
    # the other direction of the presence rules the clean checkpoints test (page_rules.PRESENCE): a tensor the rule
    # refuses, or one it requires left out
    ("ckpt.eagle.fusion-bias-without-flag", "eagle storing fusion_fc.bias while fusion_bias is false", "compat",
     _of("eagle"), _added("fusion_fc.bias", [H]), "layout.forbidden", (f"{EAGLE_PAGE}#ALG-EAGLE-4",)),
    ("ckpt.eagle.embed-tokens", "eagle storing embed_tokens.weight, which it takes from the verifier", "compat",
     _of("eagle"), _added("embed_tokens.weight", [V, H]), "layout.unexpected", (f"{EAGLE_PAGE}#ALG-EAGLE-5",)),
    ("ckpt.independent.tied-lm-head", "a tied independent draft storing lm_head.weight", "compat",
     _of("independent_qwen2_tied"), _added("lm_head.weight", [V, H]), "layout.forbidden",
     ("spec/algorithms/independent.md#ALG-INDEPENDENT-4",)),
    ("ckpt.mtp.embed-tokens", "mtp storing embed_tokens.weight, which it takes from the verifier", "compat",
     _of("mtp"), _added("embed_tokens.weight", [V, H]), "layout.unexpected", ("spec/algorithms/mtp.md#ALG-MTP-3",)),
    ("ckpt.peagle.mask-hidden-absent", "peagle without mask_hidden", "compat", _of("peagle"), _without("mask_hidden"),
     "layout.missing", ("spec/algorithms/peagle.md#ALG-PEAGLE-3",)),
    ("ckpt.medusa.lm-head", "medusa storing lm_head.weight, a name outside its layout", "compat", _of("medusa"),
     _added("lm_head.weight", [V, H]), "layout.unexpected", (f"{MEDUSA_PAGE}#ALG-MEDUSA-3",)),
    ("ckpt.mlp-speculator.fms-prefix", "mlp_speculator with the speculator. prefix of the fms wrapper on every name",
     "compat", _of("mlp_speculator"), lambda e: [("speculator." + n, d, s) for n, d, s in e], "layout.unexpected",
     ("spec/algorithms/mlp_speculator.md#ALG-MLP-3",)),
    ("ckpt.ngram.stray-tensor", "ngram with a weights file that stores a tensor", "compat", variants.config_of("ngram"),
     _added("extra.weight", [4], "F32"), "layout.unexpected", ("spec/algorithms/ngram.md#ALG-NGRAM-2",)),
    ("ckpt.eagle3.partial-layer", "eagle3 with two layers whose layer 1 lacks one tensor: layout.missing, not "
     "hazard.layers_missing", "compat", _eagle3_two_layers(), _without("layers.1.mlp.up_proj.weight"),
     "layout.missing", (f"{EAGLE3_PAGE}#ALG-EAGLE3-7",)),
    ("ckpt.eagle3.every-layer-absent", "eagle3 with two layers and no tensor of either stored, layers.0 included: "
     "each absent tensor is layout.missing, no hazard.layers_missing (m = 0)", "compat", _eagle3_two_layers(),
     lambda e: [r for r in e if not r[0].startswith("layers.")], "layout.missing",
     (f"{EAGLE3_PAGE}#ALG-EAGLE3-7", "spec/layout.md#LAY-4")),
    ("ckpt.medusa.block-shape", "medusa blocks.0.layers.0.weight one column wider than [H, H]", "compat", TINY,
     lambda e: _swap(e, "blocks.0.layers.0.weight", shape=[16, 17]), "layout.shape", (f"{MEDUSA_PAGE}#ALG-MEDUSA-4",)),
]


def _renamed_type(model_type: str):
    """A build: the eagle3 checkpoint, its config naming another `speculators_model_type` (the tensors stay eagle3's,
    which no layout is then bound to)."""
    build = _sparse(EAGLE3, lambda e: e)

    def renamed(path) -> None:
        build(path)
        write_config(path, {**EAGLE3, "speculators_model_type": model_type})
    return renamed


def _wide_nan_head(tensors: dict[str, torch.Tensor]) -> None:
    """lm_head.weight one column wider than its layout says, and all NaN: a tensor with a shape mismatch is still
    read when values are scanned (LAY-7)."""
    tensors["lm_head.weight"] = torch.full((V, H + 1), float("nan"), dtype=torch.bfloat16)


# Cases a mutant of the validator passed (make mutation, issue 23): an unknown type binds no layout and must not
# stop validation; the strict schema holds in a checkpoint's config.json as in a config alone; a tensor whose shape
# differs is scanned like one that matches.
MUTANT_CASES = [
    CheckpointCase("ckpt.config.unknown-model-type", "an eagle3 checkpoint whose config names speculators_model_type "
                   "\"eagle9\": config.enum and config.algorithm_mismatch, and its tensors are bound to no layout "
                   "(no layout finding, no crash)",
                   "compat", _renamed_type("eagle9"), "config.enum", ("spec/config.md#CFG-2",)),
    CheckpointCase("ckpt.strict.format-version-absent", "an eagle3 checkpoint without speculators_format_version, "
                   "validated under strict: config.required, as validate_config reports it for the config alone",
                   "strict", _sparse({k: v for k, v in EAGLE3.items() if k != "speculators_format_version"},
                                     lambda e: e), "config.required", ("spec/config.md#CFG-2",)),
    CheckpointCase("ckpt.mlp-speculator.inner-dim-zero", "mlp_speculator with inner_dim 0, which means D = H: every "
                   "tensor H wide (valid); the else branch of the layout's `inner_dim if inner_dim > 0 else H`",
                   "compat", _sparse({**_of("mlp_speculator"), "inner_dim": 0}, lambda e: e), None,
                   ("spec/algorithms/mlp_speculator.md#ALG-MLP-1", "spec/layout.md#LAY-2")),
    CheckpointCase("ckpt.dspark.confidence-head-off-with-markov", "dspark with enable_confidence_head false and "
                   "confidence_head_with_markov true: no confidence head is stored (valid); `and` stops at a false "
                   "left side", "compat", _sparse({**_of("dspark"), "enable_confidence_head": False}, lambda e: e),
                   None, ("spec/layout.md#LAY-2",)),
    CheckpointCase("ckpt.values.shape-mismatch-scanned", "eagle3 whose lm_head.weight is one column too wide and all "
                   "NaN, values scanned: layout.shape and weights.nonfinite (a bound tensor's error, not the hazard "
                   "of a tensor no role reads), since a mismatched tensor is read too",
                   "compat", _written(EAGLE3, _wide_nan_head), "layout.shape", ("spec/layout.md#LAY-7",),
                   scan_values=True),
]


def rule_cases() -> list[CheckpointCase]:
    cases = [CheckpointCase(case_id, description, profile, _sparse(config, edit), code, spec)
             for case_id, description, profile, config, edit, code, spec in CASES]
    cases.append(CheckpointCase("ckpt.scan.not-asked", "eagle3 whose embed_tokens and lm_head hold only NaN, validated "
                                "without scanning values: no finding, the value checks run only when asked (valid)",
                                "compat", _written(EAGLE3, _fill(*NAN_SENTINELS)), None, ("spec/index.md#GEN-5",)))
    return cases + MUTANT_CASES
