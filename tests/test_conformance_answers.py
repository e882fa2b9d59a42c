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
    "malformed_entry_not_stored": {"ckpt.index.listed-entry-malformed"},
    "unread_shard_is_empty": {"ckpt.index.listed-in-unread-shard"},
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_a_broken_adapter_of_an_answered_rule_fails_exactly_its_cases(name, tmp_path):
    subprocess.run([sys.executable, "-m", "specfmt_conformance.cli", "run", "--level", "checkpoint",
                    "--adapter", f"{sys.executable} {BROKEN / f'{name}.py'}", "--report", str(tmp_path)],
                   capture_output=True, timeout=300)
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    assert {r["id"] for r in results if r["status"] != "pass"} == EXACT[name]
    assert {r["status"] for r in results if r["id"] in EXACT[name]} == {"fail"}
