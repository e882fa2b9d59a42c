"""A finding names its rule twice: `spec`, the docs URL of the rule's anchor, and `spec_path`, the rule in the
repository as codes.json names it. The site's address is declared once, in findings.schema.json."""

import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from specfmt.findings import PROFILES, SITE, finding, spec_url, under
from specfmt.schemas import CODES, load

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("path", "url"), [
    ("spec/layout.md#SFT-4", "https://specfmt.dev/spec/layout/#SFT-4"),
    ("spec/index.md#GEN-3", "https://specfmt.dev/spec/#GEN-3"),
    ("spec/algorithms/eagle3.md#ALG-EAGLE3-8", "https://specfmt.dev/spec/algorithms/eagle3/#ALG-EAGLE3-8"),
    ("spec/hazards.md#hazard.d2t_missing", "https://specfmt.dev/spec/hazards/#hazard.d2t_missing"),
])
def test_a_spec_path_maps_to_the_directory_url_of_its_page_with_the_anchor(path, url):
    assert spec_url(path) == url


def test_a_finding_carries_the_url_and_the_repository_path_of_its_code_rule():
    found = finding("layout.shape", "model.safetensors", "/fc.weight/shape", "shape")

    assert found.spec_path == CODES["layout.shape"]["spec"]
    assert found.spec == spec_url(found.spec_path) and found.spec.startswith("https://specfmt.dev/spec/")
    assert {"spec", "spec_path"} <= found.to_json().keys()


def test_every_finding_of_every_code_validates_under_the_findings_schema():
    validator = Draft202012Validator(load("findings.schema.json")["$defs"]["finding"])
    documents = [f.to_json() for profile in PROFILES for f in under([finding(code, "config.json", "", "m")
                                                                     for code in CODES], profile)]

    assert [error.message for document in documents for error in validator.iter_errors(document)] == []


def test_a_report_written_before_spec_path_still_validates_and_a_bare_page_does_not():
    validator = Draft202012Validator(load("findings.schema.json")["$defs"]["finding"])
    old = {"file": "config.json", "pointer": "", "code": "config.missing", "message": "m", "severity": "error",
           "spec": "spec/config.md#CFG-1"}

    assert validator.is_valid(old)
    assert not validator.is_valid({**old, "spec": "https://specfmt.dev/spec/config/"})
    assert not validator.is_valid({**old, "spec_path": "https://specfmt.dev/spec/config/#CFG-1"})


def test_the_site_address_of_the_findings_schema_is_the_docs_site_url():
    site_url = re.search(r"^site_url: (\S+)$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)[1]

    assert SITE == site_url
