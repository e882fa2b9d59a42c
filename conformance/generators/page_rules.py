"""The rules of an algorithm's page that its valid checkpoints and its numerics cases exercise, named in those
cases' `spec` after the page itself, so that the rule coverage map (docs/conformance/coverage.md) can tell which
rule a case tests. Negative cases need no entry here: they name the rule of each finding code they expect.

- PRESENCE: the clean checkpoints of the algorithm store exactly the tensors these rules require for their
  flags, so a validator that requires a tensor the rule leaves out, or refuses one it requires, fails them.
- FORWARD: propose, draft_forward and generate compare the proposals or logits these rules define.
- STEPS: generate only; rules about what survives a verification step, which one proposal cannot show.
"""

from __future__ import annotations

from specfmt.schemas import layout

PRESENCE = {
    "eagle3": ("ALG-EAGLE3-7",),
    "eagle": ("ALG-EAGLE-4",),
    "independent": ("ALG-INDEPENDENT-4",),
    "mtp": ("ALG-MTP-3",),
    "peagle": ("ALG-PEAGLE-3",),
    "dspark": ("ALG-DSPARK-3",),
    "medusa": ("ALG-MEDUSA-3",),
    "mlp_speculator": ("ALG-MLP-3",),
    "ngram": ("ALG-NGRAM-2",),
}

FORWARD = {
    "eagle3": ("ALG-EAGLE3-11", "ALG-EAGLE3-12", "ALG-EAGLE3-13"),
    "eagle": ("ALG-EAGLE-5", "ALG-EAGLE-6", "ALG-EAGLE-7"),
    "independent": ("ALG-INDEPENDENT-4", "ALG-INDEPENDENT-5", "ALG-INDEPENDENT-6"),
    "mtp": ("ALG-MTP-3", "ALG-MTP-5", "ALG-MTP-6"),
    "peagle": ("ALG-PEAGLE-1", "ALG-PEAGLE-4", "ALG-PEAGLE-6"),
    "dflash": ("ALG-DFLASH-6", "ALG-DFLASH-7"),
    "dspark": ("ALG-DSPARK-4", "ALG-DSPARK-5"),
    "medusa": ("ALG-MEDUSA-5", "ALG-MEDUSA-6"),
    "mlp_speculator": ("ALG-MLP-3", "ALG-MLP-4", "ALG-MLP-5"),
    "ngram": ("ALG-NGRAM-3", "ALG-NGRAM-5"),
}

STEPS = {
    "dflash": ("ALG-DFLASH-8",),
    "peagle": ("ALG-PEAGLE-5",),
    "ngram": ("ALG-NGRAM-6",),
}


def page_anchors(algorithm: str, *tables: dict) -> list[str]:
    """The algorithm's page, then the anchor of each rule the tables list for it, without repeats."""
    page = layout(algorithm)["spec"]
    rules = [rule for table in tables for rule in table.get(algorithm, ())]
    return [page, *(f"{page}#{rule}" for rule in dict.fromkeys(rules))]
