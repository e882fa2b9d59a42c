"""The schema documents themselves: well-formed, described, anchored, and consistent with the spec."""

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from specfmt.schemas import CODES, layout, load, schema_names

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = [n for n in schema_names() if n.startswith("layouts/")]


def walk(node, path=""):
    """Every (path, subschema) pair of a schema document."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}/{i}")


@pytest.mark.parametrize("name", schema_names())
def test_every_schema_file_is_a_valid_draft_2020_12_schema(name):
    doc = load(name)
    if name.startswith("layouts/"):
        Draft202012Validator(load("layout.schema.json")).validate(doc)
    else:
        Draft202012Validator.check_schema(doc)


@pytest.mark.parametrize("name", ["config.schema.json", "config.strict.schema.json", "layout.schema.json",
                                  "findings.schema.json"])
def test_every_property_carries_a_description(name):
    missing = []
    for path, node in walk(load(name)):
        # Conditions (`if`) and strict overlays restate properties; they declare nothing new.
        if "/if" in path or "/$defs/is_" in path or "x-specfmt-strict" in path:
            continue
        if isinstance(node, dict) and isinstance(node.get("properties"), dict) and not path.endswith("/properties"):
            for key, prop in node["properties"].items():
                if isinstance(prop, dict) and "description" not in prop:
                    missing.append(f"{path}/properties/{key}")
    assert missing == []


@pytest.mark.parametrize("name", schema_names())
def test_every_pattern_is_anchored(name):
    patterns = [node["pattern"] for _, node in walk(load(name)) if isinstance(node, dict)
                and isinstance(node.get("pattern"), str)]
    assert all(p.startswith("^") and p.endswith("$") for p in patterns), patterns


def test_schema_ids_carry_the_version_in_their_path():
    for name in schema_names():
        doc = load(name)
        if "$id" in doc:
            assert doc["$id"] == f"https://specfmt.dev/schemas/v1.0/{name}"


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_code_a_layout_document_names_is_declared(name):
    codes = {node[key] for _, node in walk(load(name)) if isinstance(node, dict)
             for key in ("missing_code", "forbidden_code", "shape_code", "code") if key in node}
    assert codes <= set(CODES)


def test_every_finding_code_points_at_an_anchor_that_exists_in_the_spec():
    for code, entry in CODES.items():
        file, anchor = entry["spec"].split("#")
        text = (ROOT / file).read_text(encoding="utf-8")
        assert f'<a id="{anchor}"></a>' in text, f"{code}: {entry['spec']}"


def test_every_hazard_code_has_its_own_entry_in_hazards_md():
    text = (ROOT / "spec" / "hazards.md").read_text(encoding="utf-8")
    for code, entry in CODES.items():
        if entry["kind"] == "hazard":
            assert f'<a id="{code}"></a>' in text


def test_every_code_the_package_reports_is_declared():
    source = "\n".join(p.read_text() for p in (ROOT / "reference" / "specfmt").glob("*.py"))
    used = set(re.findall(r'"((?:io|config|weights|index|header|layout|hazard)\.[a-z_]+)"', source))
    assert used <= set(CODES), used - set(CODES)


@pytest.mark.parametrize("algorithm", sorted(n.removeprefix("layouts/").removesuffix(".json") for n in LAYOUTS
                                             if not n.startswith("layouts/_")))
def test_each_algorithm_has_a_layout_a_config_schema_branch_and_a_spec_page(algorithm):
    assert layout(algorithm)["algorithm"] == algorithm
    assert algorithm in load("config.schema.json")["properties"]["speculators_model_type"]["enum"]
    assert (ROOT / "spec" / "algorithms" / f"{algorithm}.md").exists()


def test_spec_rule_anchors_are_unique_within_each_page():
    for page in (ROOT / "spec").rglob("*.md"):
        anchors = re.findall(r'<a id="([^"]+)"></a>', page.read_text(encoding="utf-8"))
        assert len(anchors) == len(set(anchors)), page


def test_layout_documents_roles_are_unique_per_instance():
    for name in LAYOUTS:
        if name.startswith("layouts/_"):
            continue
        doc = layout(name.removeprefix("layouts/").removesuffix(".json"))
        seen = {}
        for entry in doc["tensors"]:
            key = (entry["role"], json.dumps(entry.get("for")))
            assert key not in seen or seen[key]["name"] == entry["name"], (name, key)
            seen[key] = entry
