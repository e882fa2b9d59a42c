"""The rule coverage map (scripts/gen_coverage.py, docs/conformance/coverage.md): every MUST-class rule of spec/ has
a conformance case or a declared reason, and the check fails when either goes missing. Changes are made to a copy
of the inputs in tmp_path, never to the repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BROKEN = REPO / "conformance" / "adapters" / "broken"
sys.path.insert(0, str(REPO / "scripts"))

import gen_coverage  # noqa: E402


def copy_inputs(tmp_path: Path) -> Path:
    """What the map reads: spec/, the manifest, every case file it lists and the reasons."""
    shutil.copytree(REPO / "spec", tmp_path / "spec")
    suite = tmp_path / "conformance"
    manifest = json.loads((REPO / "conformance" / "manifest.json").read_text(encoding="utf-8"))
    paths = {c["path"] if c["level"] == "schema" else c["path"] + "/case.json" for c in manifest["cases"]}
    for rel in [*paths, "manifest.json", "coverage.json"]:
        (suite / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "conformance" / rel, suite / rel)
    return tmp_path


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_every_must_class_rule_has_a_case_or_a_reason():
    assert gen_coverage.problems(REPO) == []


def test_removing_the_anchors_of_a_rules_only_cases_fails_the_check(tmp_path):
    root = copy_inputs(tmp_path)
    assert gen_coverage.problems(root) == []
    groups = root / "conformance" / "cases" / "schema" / "1.0" / "algorithms.json"
    edit_json(groups, lambda doc: [g["spec"].remove("spec/config.md#CFG-4") for g in doc
                                   if "spec/config.md#CFG-4" in g["spec"]])
    case = root / "conformance" / "cases" / "checkpoint" / "1.0" / "ckpt.scan.not-asked" / "case.json"
    edit_json(case, lambda doc: doc["spec"].remove("spec/index.md#GEN-5"))
    assert gen_coverage.problems(root) == [
        "spec/config.md#CFG-4: MUST-class rule with no case and no reason in conformance/coverage.json",
        "spec/index.md#GEN-5: MUST-class rule with no case and no reason in conformance/coverage.json"]


def test_a_reason_for_a_rule_that_is_absent_or_not_must_class_or_covered_fails_the_check(tmp_path):
    root = copy_inputs(tmp_path)
    edit_json(root / gen_coverage.REASONS, lambda doc: doc["reasons"].update(
        {"CFG-99": "no such rule", "CFG-10": "says no MUST", "CFG-12": "has a case"}))
    cases = len(next(r for r in gen_coverage.coverage(root) if r.id == "CFG-12").cases)
    assert gen_coverage.problems(root) == [
        "conformance/coverage.json: reason for CFG-99, which is no MUST-class rule of spec/",
        "conformance/coverage.json: reason for CFG-10, which is no MUST-class rule of spec/",
        f"conformance/coverage.json: CFG-12 has cases ({cases}) and a reason; drop the reason"]


def test_a_case_anchor_that_names_no_rule_fails_the_check(tmp_path):
    root = copy_inputs(tmp_path)
    case = root / "conformance" / "cases" / "checkpoint" / "1.0" / "ckpt.scan.not-asked" / "case.json"
    edit_json(case, lambda doc: doc["spec"].append("spec/index.md#GEN-77"))
    assert gen_coverage.problems(root) == ["conformance cases: spec anchor spec/index.md#GEN-77 names no rule of spec/"]


def test_the_page_lists_every_must_class_rule_and_counts_them_from_the_data():
    page = (REPO / "docs" / "conformance" / "coverage.md").read_text(encoding="utf-8")
    rules = gen_coverage.coverage(REPO)
    listed = re.findall(r"^\| \[([^\]]+)\]\(\.\./spec/", page, re.MULTILINE)
    assert listed == [r.id for r in rules]
    assert f"**{len(rules)}** MUST-class rules" in page
    assert f"**{sum(1 for r in rules if r.cases)}** with cases" in page


def test_a_rule_is_must_class_only_when_its_text_says_must_shall_or_required():
    assert gen_coverage.Rule("X-1", "spec/x.md", "**X-1.** A writer MUST NOT emit it.").must
    assert gen_coverage.Rule("X-2", "spec/x.md", "**X-2.** The field is `required` and SHOULD be set.").must is False


def test_an_algorithm_rule_covers_a_case_of_its_algorithm_that_expects_the_code_and_field_it_names():
    rule = gen_coverage.Rule("ALG-EAGLE3-6", "spec/algorithms/eagle3.md",
                             "**ALG-EAGLE3-6.** `fc.weight` MUST have shape `[H, A*H_t]` (`layout.fc_width`).")
    case = {"id": "c", "algorithm": "eagle3", "spec": [], "findings": [("layout.fc_width", "/fc.weight/shape")]}
    assert gen_coverage.covers(rule, case)
    assert not gen_coverage.covers(rule, {**case, "algorithm": "peagle"})
    assert not gen_coverage.covers(rule, {**case, "findings": [("layout.fc_width", "/lm_head.weight/shape")]})


def test_the_first_sentence_ends_at_a_period_outside_code_spans():
    text = "**CFG-4.** A strict checkpoint MUST declare `\"1.0\"` or `1.<minor>`. Under compat it MAY be absent."
    assert gen_coverage.first_sentence(text) == "A strict checkpoint MUST declare `\"1.0\"` or `1.<minor>`."


def schema_cases(group: str, *tests: str) -> set[str]:
    return {f"{group}/{t}" for t in tests}


# Each broken adapter of a rule the coverage map found untested, and exactly the cases it must fail.
MODEL_TYPE = ("model-type-absent", "model-type-unknown")
MODEL_TYPE_RULES = ("alg-eagle-1", "alg-independent-1", "alg-mtp-1", "alg-dflash-4")
EXACT = {
    "model_type_eagle3_only": set().union(*(schema_cases(f"cfg.{r}.compat", *MODEL_TYPE)
                                            | schema_cases(f"cfg.{r}.strict", "model-type-absent")
                                            for r in MODEL_TYPE_RULES)),
    "verifier_vocab_eagle3_only": {"cfg.alg-eagle-3.compat/verifier-vocab-size",
                                   "cfg.alg-independent-2.compat/verifier-vocab-size",
                                   "ckpt.mtp.verifier-mismatch"},
    "independent_flattened_read": {"cfg.alg-independent-3.compat/flattened"},
    "mlp_alias_accepted": {"cfg.alg-mlp-2.compat/mlp-alias"},
    "format_version_exact": {"cfg.format-version.compat/later-minor"},
    "eagle3_layout_lenient": {"ckpt.eagle3.lm-head-absent", "ckpt.eagle3.mask-hidden", "ckpt.eagle3.verifier-lm-head"},
    "medusa_shapes_unchecked": {"ckpt.medusa.block-shape"},
    "presence_eagle3_only": {"ckpt.layout.forbidden", "ckpt.eagle.fusion-bias-without-flag", "ckpt.eagle.embed-tokens",
                             "ckpt.independent.tied-lm-head", "ckpt.mtp.embed-tokens", "ckpt.peagle.mask-hidden-absent",
                             "ckpt.medusa.lm-head", "ckpt.mlp-speculator.fms-prefix", "ckpt.ngram.stray-tensor",
                             "ckpt.layout.every-layer-absent"},
}


def failing(name: str, tmp_path: Path) -> tuple[dict[str, str], list[dict]]:
    subprocess.run([sys.executable, "-m", "specfmt_conformance.cli", "run", "--level", "schema", "--level",
                    "checkpoint", "--adapter", f"{sys.executable} {BROKEN / f'{name}.py'}", "--report", str(tmp_path)],
                   capture_output=True, timeout=300, cwd=REPO)
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    return {r["id"]: r["status"] for r in results if r["status"] != "pass"}, results


@pytest.mark.parametrize("name", sorted(EXACT))
def test_a_broken_adapter_of_a_newly_covered_rule_fails_exactly_its_cases(name, tmp_path):
    failed, _ = failing(name, tmp_path)
    assert set(failed) == EXACT[name]
    assert set(failed.values()) == {"fail"}


def test_an_adapter_that_always_scans_values_fails_the_unscanned_case_and_only_unscanned_ones(tmp_path):
    failed, results = failing("always_scans_values", tmp_path)
    assert "ckpt.scan.not-asked" in failed
    scanned = {c["id"] for c in json.loads((REPO / "conformance" / "manifest.json").read_text())["cases"]
               if c["level"] == "checkpoint" and json.loads((REPO / "conformance" / c["path"] / "case.json")
                                                            .read_text()).get("scan_values")}
    assert not set(failed) & scanned
    assert {r["level"] for r in results if r["id"] in failed} == {"checkpoint"}


def test_a_one_word_title_takes_the_next_sentence_with_it():
    text = "**LAY-6.** Dtype. A stored tensor's dtype MUST belong to its class. More."
    assert gen_coverage.first_sentence(text) == "Dtype. A stored tensor's dtype MUST belong to its class."

