"""The byte-level checkpoint cases (malformed headers, shard indexes, weights files, config.json files) and the
layout rules every algorithm shares are built on an eagle3 checkpoint, so that an adapter declaring
`algorithms: ["eagle3"]` (PROTOCOL.md 3) is sent them and certified for them (issue 23, item 7)."""

import json
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent.parent / "conformance" / "manifest.json"
BYTE_LEVEL = ("ckpt.header.", "ckpt.index.", "ckpt.weights.", "ckpt.config.")
SHARED_LAYOUT_RULES = ("ckpt.layout.missing", "ckpt.layout.shape", "ckpt.layout.dtype", "ckpt.layout.unexpected",
                       "ckpt.hazard.dtype-mismatch.compat", "ckpt.hazard.dtype-mismatch.strict")


def _checkpoint_cases() -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(MANIFEST.read_text())["cases"] if c["level"] == "checkpoint"}


def test_every_byte_level_case_applies_to_an_adapter_that_declares_only_eagle3():
    cases = _checkpoint_cases()
    byte_level = {i: c for i, c in cases.items() if i.startswith(BYTE_LEVEL)}
    assert len(byte_level) >= 50
    others = {i: c["algorithm"] for i, c in byte_level.items() if c.get("algorithm", "eagle3") != "eagle3"}
    assert others == {}


def test_the_layout_rules_every_algorithm_shares_are_certified_on_eagle3():
    cases = _checkpoint_cases()
    assert {i: cases[i].get("algorithm") for i in SHARED_LAYOUT_RULES} == dict.fromkeys(SHARED_LAYOUT_RULES, "eagle3")
