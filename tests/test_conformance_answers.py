"""Issue 23's answers, held in place: each guess or contradiction an outside implementer met has its sentence in
the rule that answers it (found by the rule's id in spec/), the changelog lists every answer, and a broken adapter
for each newly tested rule fails exactly the cases of that rule at the checkpoint level."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec"
BROKEN = ROOT / "conformance" / "adapters" / "broken"

# rule id -> the spec file that holds it and the sentences that answer the issue there
ANSWERS = {
    "SFT-5": ("layout.md", ["is `index.mismatch` at `/weight_map/<name>` whenever that header was read",
                            "even a header that holds no tensor at all or only malformed entries"]),
    "ALG-EAGLE3-8": ("algorithms/eagle3.md", ["are one finding at `/d2t`, in the file that stores `d2t`",
                                              "is one finding at `/t2d`, in the file that stores `t2d`"]),
    "hazard.vocab_mapping": ("hazards.md", ["Pointer: `/d2t` for targets out of range or not increasing",
                                            "else `/t2d` for a `t2d` that is not true exactly at the targets"]),
    "GEN-4": ("index.md", ["`io.not_found` in `.` (the checkpoint path itself)",
                           "Conformance runners grade `file` with `code`, `pointer` and `severity`"]),
    # item 4: which repeated key, at what pointer; which finding wins; the scan's scope; a failed entry's instances
    "SFT-2": ("layout.md", ["for a key repeated inside the entry of tensor `<name>` (`/<name>/dtype`, say)",
                            "the first repeated member in the order of the text",
                            "is `header.json`, whatever keys it repeats (GEN-7)"]),
    "GEN-7": ("index.md", ["A repeated key is looked for only in a document that is otherwise strict JSON within the "
                           "bound", "the bound counts the text's nesting, a member that a repeated key replaces"]),
    "LAY-3": ("layout.md", ["a symbol that cannot be evaluated is `null` in the expressions that use it",
                            "gives no instance at all, not even the instances evaluated before the failure"]),
    "LAY-7": ("layout.md", ["The scan runs only when binding ran (LAY-3)",
                            "a `layout.unexpected` or `layout.forbidden` tensor (one whose condition is false) is not "
                            "read", "A tensor of no element holds no value",
                            "F8_E4M3 is E4M3FN, which has no infinity and whose only NaN bytes are 0x7F and 0xFF"]),
}


def rule_text(path: Path, rule: str) -> str:
    """The paragraph of `rule`: from its anchor to the next anchor, whitespace folded to single spaces."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f'<a id="{rule}"></a>')
    end = text.find("<a id=", start + 1)
    return " ".join(text[start:end if end != -1 else None].split())


@pytest.mark.parametrize("rule", sorted(ANSWERS))
def test_each_answered_rule_states_its_answer_in_its_own_paragraph(rule):
    page, sentences = ANSWERS[rule]
    paragraph = rule_text(SPEC / page, rule)
    assert [s for s in sentences if s not in paragraph] == []


def test_the_old_sft5_condition_that_contradicted_the_case_is_gone():
    assert "holds at least one well-formed entry" not in rule_text(SPEC / "layout.md", "SFT-5")


def test_the_changelog_lists_every_answered_rule_and_the_new_suite_version():
    changelog = " ".join((SPEC / "CHANGELOG.md").read_text(encoding="utf-8").split())
    issue = changelog[changelog.index("answered (issue 23)"):changelog.index("## Conformance suite 3.0.0")]
    assert [rule for rule in [*ANSWERS, "header.entry", "LAY-2", "ALG-MEDUSA-2"] if rule not in issue] == []
    version = (ROOT / "conformance" / "SUITE_VERSION").read_text().strip()
    assert f"## Conformance suite {version} " in changelog


def test_the_sft2_pointer_that_named_no_member_of_the_header_is_gone():
    assert "is reported at `/dtype`" not in rule_text(SPEC / "layout.md", "SFT-2")


# item 4's cases: each cites the rule that answers it and expects the answer
ITEM_4_CASES = {
    "ckpt.header.duplicate-inside-entry": ("SFT-2", [("header.duplicate", "/extra.weight/dtype")]),
    "ckpt.header.duplicate-first-in-text": ("SFT-2", [("header.duplicate", "/layers.0.mlp.up_proj.weight")]),
    "ckpt.header.duplicate-tensor-before-entry-key": ("SFT-2", [("header.duplicate",
                                                                  "/layers.0.mlp.gate_proj.weight")]),
    "ckpt.header.duplicate-and-too-deep": ("GEN-7", [("header.json", "")]),
    "ckpt.header.duplicate-hides-too-deep": ("GEN-7", [("header.json", "")]),
    "ckpt.header.duplicate-and-not-json": ("GEN-7", [("header.json", "")]),
    "ckpt.config.duplicate-key-and-too-deep": ("GEN-7", [("config.json", "")]),
    "ckpt.values.unbound-not-scanned": ("LAY-7", [("index.missing_shard", "/weight_map")]),
    "ckpt.values.unexpected-all-nan": ("LAY-7", [("hazard.nonfinite", "/extra.weight"),
                                                 ("layout.unexpected", "/extra.weight")]),
    "ckpt.values.condition-false-all-nan": ("LAY-7", [("hazard.nonfinite", "/input_norm.weight"),
                                                      ("layout.forbidden", "/input_norm.weight")]),
    "ckpt.values.zero-elements": ("LAY-7", [("config.range", "/transformer_layer_config/intermediate_size")]),
    "ckpt.values.float8": ("LAY-7", [("layout.unexpected", "/extra.e4m3_finite"),
                                     ("hazard.nonfinite", "/extra.e4m3_nan"), ("layout.unexpected", "/extra.e4m3_nan"),
                                     ("hazard.nonfinite", "/extra.e5m2_inf"),
                                     ("layout.unexpected", "/extra.e5m2_inf")]),
    "ckpt.layout.failed-entry-binds-the-rest": ("LAY-3", [("config.type", "/target_hidden_size"),
                                                          ("layout.missing", "/norm.weight")]),
}


@pytest.mark.parametrize("case_id", sorted(ITEM_4_CASES))
def test_each_item_4_case_cites_its_rule_and_expects_its_answer(case_id):
    rule, findings = ITEM_4_CASES[case_id]
    case = json.loads((ROOT / f"conformance/cases/checkpoint/1.0/{case_id}/case.json").read_text())
    assert [a for a in case["spec"] if a.endswith(f"#{rule}")] != []
    assert sorted((f["code"], f["pointer"]) for f in case["findings"]) == sorted(findings)


def test_the_header_entry_summary_names_only_what_sft2_files_under_it():
    codes = json.loads((ROOT / "schemas" / "v1.0" / "codes.json").read_text())["codes"]
    summary = codes["header.entry"]["summary"]
    assert "not an object" in summary and "malformed data_offsets are header.offsets" in summary
    assert not re.search(r"or has them malformed", summary)


def test_the_t2d_case_cites_alg_eagle3_8_and_expects_its_pointer():
    case = json.loads((ROOT / "conformance/cases/checkpoint/1.0/ckpt.values.vocab-mapping-t2d/case.json").read_text())
    assert "spec/algorithms/eagle3.md#ALG-EAGLE3-8" in case["spec"]
    assert [(f["code"], f["pointer"], f["file"]) for f in case["findings"]] == [
        ("hazard.vocab_mapping", "/t2d", "model.safetensors")]


def test_the_sft5_cases_pin_which_shard_headers_the_index_is_compared_with():
    for case_id, code in [("listed-entry-malformed", "header.entry"), ("listed-in-unread-shard", "header.json")]:
        case = json.loads((ROOT / f"conformance/cases/checkpoint/1.0/ckpt.index.{case_id}/case.json").read_text())
        assert case["spec"][0] == "spec/layout.md#SFT-5"
        assert [f["code"] for f in case["findings"]] == [code]  # no index.mismatch, no layout.missing


# Each broken adapter of a rule issue 23 newly tests, and exactly the checkpoint cases it must fail.
EXACT = {
    "ignores_t2d": {"ckpt.values.vocab-mapping-t2d"},
    "vocab_mapping_at_d2t": {"ckpt.values.vocab-mapping-t2d"},
    "listed_absent_needs_an_entry": {"ckpt.index.mismatch-listed-absent"},
    "index_findings_in_the_index": {"ckpt.index.mismatch-stored-twice", "ckpt.index.mismatch-unlisted"},
    "malformed_entry_not_stored": {"ckpt.index.listed-entry-malformed", "ckpt.index.listed-malformed-first-shard"},
    "unread_shard_is_empty": {"ckpt.index.listed-in-unread-shard"},
    # item 4: the repeated key alone, the pointer SFT-2 gave before; item 7: no binding after a header finding
    "duplicate_at_its_key": {"ckpt.header.duplicate-inside-entry"},
    "binding_skipped_after_header_finding": {"ckpt.header.entry-malformed-binds-the-rest"},
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_a_broken_adapter_of_an_answered_rule_fails_exactly_its_cases(name, tmp_path):
    subprocess.run([sys.executable, "-m", "specfmt_conformance.cli", "run", "--level", "checkpoint",
                    "--adapter", f"{sys.executable} {BROKEN / f'{name}.py'}", "--report", str(tmp_path)],
                   capture_output=True, timeout=300)
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    assert {r["id"] for r in results if r["status"] != "pass"} == EXACT[name]
    assert {r["status"] for r in results if r["id"] in EXACT[name]} == {"fail"}
