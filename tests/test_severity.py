"""A finding's severity comes from one table, codes.json `severity` (kind -> profile -> severity), applied once by
validate(): findings are created without one, and no validator step below validate() takes a profile except the
strict schema (spec/index.md#GEN-4)."""

import ast
import json
from pathlib import Path

import pytest

from builders import write_variant
from specfmt import findings
from specfmt.findings import PROFILES, SEVERITY, finding, under
from specfmt.schemas import CODES, load
from specfmt.validate import validate, validate_config

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ["validate", "layout", "config_checks", "values", "safetensors_header", "reader_facts", "files",
             "binding", "findings"]
# Where a profile is more than a severity: the entry points, the strict schema, and the policy itself.
TAKES_PROFILE = {"validate", "validate_config", "schema_findings", "_from_error", "severity", "under"}


@pytest.fixture(scope="module")
def eagle3(tmp_path_factory) -> tuple[Path, dict]:
    path = write_variant("eagle3", tmp_path_factory.mktemp("severity") / "eagle3")
    return path, json.loads((path / "config.json").read_text(encoding="utf-8"))


def test_the_severity_table_is_the_map_codes_json_declares_for_every_kind_and_profile():
    declared = load("codes.json")["severity"]["kinds"]
    allowed = set(load("findings.schema.json")["$defs"]["finding"]["properties"]["severity"]["enum"])

    assert SEVERITY == declared
    assert set(declared) == {entry["kind"] for entry in CODES.values()}
    assert all(set(by_profile) == set(PROFILES) and set(by_profile.values()) <= allowed
               for by_profile in declared.values())


def test_a_finding_is_created_without_a_severity_and_under_gives_it_the_profiles():
    made = finding("hazard.d2t_missing", "config.json", "", "m")

    assert made.severity is None
    assert [f.severity for f in under([made], "compat") + under([made], "strict")] == ["warning", "error"]


def test_a_hazard_is_a_warning_under_compat_and_an_error_under_strict(eagle3, tmp_path):
    path, config = eagle3
    ids = config["eagle_aux_hidden_state_layer_ids"][::-1]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    (broken / "config.json").write_text(json.dumps({**config, "eagle_aux_hidden_state_layer_ids": ids}))

    for profile, expected in (("compat", "warning"), ("strict", "error")):
        report = validate(broken, profile)
        assert [(f.code, f.severity) for f in report.findings] == [("hazard.aux_layer_ids_order", expected)]
        assert report.ok == (expected == "warning")


def test_a_finding_takes_its_severity_from_the_one_table(eagle3, monkeypatch):
    monkeypatch.setitem(findings.SEVERITY["error"], "compat", "warning")
    config = {**eagle3[1], "draft_vocab_size": "many"}

    severities = {p: [(f.code, f.severity) for f in validate_config(config, p).findings] for p in PROFILES}

    assert severities == {"compat": [("config.type", "warning")], "strict": [("config.type", "error")]}


def test_no_validator_step_below_validate_takes_a_profile_but_the_strict_schema():
    taking = set()
    for name in VALIDATOR:
        tree = ast.parse((ROOT / "reference" / "specfmt" / f"{name}.py").read_text(encoding="utf-8"))
        taking |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                   and "profile" in [a.arg for a in node.args.args + node.args.kwonlyargs]}

    assert taking == TAKES_PROFILE
