"""Checkpoint cases for rules the generic cases do not reach: the layout rules of one algorithm page, on a
header-only checkpoint of that algorithm with one difference each from its layout document (ckpt_layout.py tests
the generic codes), and GEN-5's value checks left out when values are not scanned."""

from __future__ import annotations

from conformance.generators.ckpt import CheckpointCase
from conformance.generators.ckpt_layout import EAGLE3, TINY, H, V, _sparse, _swap
from conformance.generators.ckpt_values import NAN_SENTINELS, _fill, _written

EAGLE3_PAGE, MEDUSA_PAGE = "spec/algorithms/eagle3.md", "spec/algorithms/medusa.md"
# (case id, description, profile, config, edit of the layout's entries, targeted code or None, extra anchors)
CASES = [
    ("ckpt.eagle3.lm-head-absent", "eagle3 without lm_head.weight, which is required in both profiles", "compat",
     EAGLE3, lambda e: [r for r in e if r[0] != "lm_head.weight"], "layout.missing", (f"{EAGLE3_PAGE}#ALG-EAGLE3-9",)),
    ("ckpt.eagle3.embed-tokens-absent", "eagle3 without embed_tokens.weight, which is optional (valid)", "strict",
     EAGLE3, lambda e: [r for r in e if r[0] != "embed_tokens.weight"], None, (f"{EAGLE3_PAGE}#ALG-EAGLE3-9",)),
    ("ckpt.eagle3.mask-hidden", "eagle3 storing peagle's mask_hidden, a name outside its layout", "compat", EAGLE3,
     lambda e: e + [("mask_hidden", "BF16", [H])], "layout.unexpected", (f"{EAGLE3_PAGE}#ALG-EAGLE3-10",)),
    ("ckpt.eagle3.verifier-lm-head", "eagle3 storing the training-only verifier_lm_head.weight, a name the layout "
     "lists as forbidden", "compat", EAGLE3, lambda e: e + [("verifier_lm_head.weight", "BF16", [V, H])],
     "hazard.stray_verifier_tensor", (f"{EAGLE3_PAGE}#ALG-EAGLE3-10", "spec/layout.md#LAY-1")),
    ("ckpt.medusa.block-shape", "medusa blocks.0.layers.0.weight one column wider than [H, H]", "compat", TINY,
     lambda e: _swap(e, "blocks.0.layers.0.weight", shape=[16, 17]), "layout.shape", (f"{MEDUSA_PAGE}#ALG-MEDUSA-4",)),
]


def rule_cases() -> list[CheckpointCase]:
    cases = [CheckpointCase(case_id, description, profile, _sparse(config, edit), code, spec)
             for case_id, description, profile, config, edit, code, spec in CASES]
    cases.append(CheckpointCase("ckpt.scan.not-asked", "eagle3 whose embed_tokens and lm_head hold only NaN, validated "
                                "without scanning values: no finding, the value checks run only when asked (valid)",
                                "compat", _written(EAGLE3, _fill(*NAN_SENTINELS)), None, ("spec/index.md#GEN-5",)))
    return cases
