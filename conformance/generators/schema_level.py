"""Schema-level cases: config.json documents checked alone (validate_config), in groups of the
JSON-Schema-Test-Suite shape. Expected findings are what the reference implementation reports.

Every negative test here is generated from the schemas (required fields, keywords, annotations);
the semantic rules of spec/config.md that no schema keyword carries are in schema_rules.py.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from conformance.generators.common import PROFILES, anchors, corpus_id, expected, get_path, pointer_id, slug
from conformance.generators.variants import CORPUS, VARIANTS, corpus_names
from conformance.generators.walk import applied, forbidden_fields, required_fields, violations
from specfmt import validate_config
from specfmt.findings import pointer, render
from specfmt.schemas import VERSION, keyword_code, load

SCHEMAS = {"compat": load("config.schema.json"), "strict": load("config.strict.schema.json")}
FAMILY_DESCRIPTION = {"type": "values of the wrong JSON type", "range": "numbers and lists out of their range",
                      "enum": "strings outside their allowed values",
                      "pattern": "strings that do not match their pattern", "forbidden": "fields the profile forbids"}


def algorithm_page(config: dict) -> str:
    return f"spec/algorithms/{config['speculators_model_type']}.md"


def schema_test(test_id: str, description: str, data: Any, profile: str, target: tuple[str, str] | None = None) -> dict:
    """One test; `target` is the (code, pointer) it is about, None for a document that must be clean."""
    report = validate_config(data, profile)
    found = report.codes()
    if target is None and report.findings:
        raise AssertionError(f"{test_id}: expected no findings under {profile}, got {sorted(found)}")
    if target is not None and target not in found:
        raise AssertionError(f"{test_id}: expected {target} under {profile}, got {sorted(found)}")
    return {"id": test_id, "description": description, "data": data, "valid": report.ok,
            "findings": expected(report)}


def group(group_id: str, description: str, profile: str, tests: list[dict], *spec: str) -> dict:
    codes = sorted({f["code"] for t in tests for f in t["findings"]})
    return {"id": group_id, "description": description, "since": VERSION, "spec": anchors(*spec, codes=codes),
            "profile": profile, "tests": tests}


def replaced(config: dict, path: tuple, value: Any) -> dict:
    """A copy of `config` with the value at `path` replaced (the root itself when `path` is empty)."""
    if not path:
        return value
    doc = copy.deepcopy(config)
    get_path(doc, path[:-1])[path[-1]] = value
    return doc


def removed(config: dict, path: tuple) -> dict:
    doc = copy.deepcopy(config)
    del get_path(doc, path[:-1])[path[-1]]
    return doc


def variants() -> list[dict]:
    """Every strict builder variant is valid under both profiles (GEN-2: strict implies compat)."""
    pages = sorted({algorithm_page(c) for c in VARIANTS.values()})
    groups = []
    for profile in PROFILES:
        tests = [schema_test(slug(name), f"the {name} builder variant ({config['speculators_model_type']}) is valid",
                             copy.deepcopy(config), profile) for name, config in VARIANTS.items()]
        groups.append(group(f"cfg.variant.{profile}", f"the strict builder variants of all algorithms are valid under "
                            f"{profile}", profile, tests, "spec/index.md#GEN-2", "spec/config.md#CFG-3", *pages))
    return groups


def required() -> list[dict]:
    """Removing each field a profile's schema requires reports config.required at its pointer.

    One test per pointer: the first builder variant that has the field supplies the document.
    """
    groups = []
    for profile in PROFILES:
        tests: dict[str, dict] = {}
        for name, config in VARIANTS.items():
            for path, key in required_fields(SCHEMAS[profile], config):
                ptr = pointer(*path, key)
                if ptr not in tests:
                    description = f"{ptr} removed from the {name} variant is reported required"
                    tests[ptr] = schema_test(pointer_id(ptr), description, removed(config, path + (key,)), profile,
                                             ("config.required", ptr))
        groups.append(group(f"cfg.required.{profile}", f"every field the {profile} schema requires, removed one at a "
                            "time", profile, [tests[p] for p in sorted(tests)]))
    return groups


def _keyword_id(ptr: str, keyword: str) -> str:
    return f"{pointer_id(ptr)}.{re.sub(r'(?<!^)(?=[A-Z])', '-', keyword).lower()}"


def _keyword_tests(profile: str, seen: set) -> dict[str, list[dict]]:
    """Keyword violations under `profile` that `seen` (pointer with indices as `*`, keyword) lacks."""
    by_family: dict[str, list[dict]] = {}
    for name, config in VARIANTS.items():
        cases = [(path, kw, bad, node.get(kw)) for path, node, value in applied(SCHEMAS[profile], config)
                 for kw, bad in violations(node, value)]
        cases += [(path + (key,), "not", {}, {}) for path, key in forbidden_fields(SCHEMAS[profile], config)]
        for path, keyword, bad, rule in cases:
            key = (tuple("*" if isinstance(p, int) else p for p in path), keyword)
            if key in seen:
                continue
            seen.add(key)
            ptr, code = pointer(*path), keyword_code(keyword)  # a group per code: cfg.range.compat, ...
            family = code.removeprefix("config.")
            description = (f"{ptr or 'the document'} of the {name} variant set to {render(bad)} breaks "
                           f"{keyword} {render(rule)}")
            by_family.setdefault(family, []).append(schema_test(
                _keyword_id(ptr, keyword), description, replaced(config, path, bad), profile, (code, ptr)))
    return by_family


def keywords() -> list[dict]:
    """Each schema keyword that applies to a builder variant, broken once: type, range, enum, pattern,
    forbidden. A keyword is tested under strict only where the strict overlay adds it."""
    seen: set = set()
    groups = []
    for profile in PROFILES:
        for family, tests in _keyword_tests(profile, seen).items():
            groups.append(group(f"cfg.{family}.{profile}", f"{FAMILY_DESCRIPTION[family]} ({profile} schema)",
                                profile, sorted(tests, key=lambda t: t["id"])))
    return groups


def corpus() -> list[dict]:
    """The config.json of every corpus checkpoint (written by the speculators library) under both profiles."""
    documents = {name: json.loads((CORPUS / name / "config.json").read_text(encoding="utf-8"))
                 for name in corpus_names()}
    groups = []
    for profile in PROFILES:
        tests = []
        for name, doc in documents.items():
            report = validate_config(doc, profile)
            if profile == "compat" and not report.ok:
                raise AssertionError(f"corpus {name} fails compat: {report.codes()}")
            tests.append({"id": corpus_id(name), "description": f"config.json of the corpus checkpoint {name}",
                          "data": doc, "valid": report.ok, "findings": expected(report)})
        groups.append(group(f"cfg.corpus.{profile}", f"configs written by the speculators library, under {profile}",
                            profile, tests, "spec/index.md#GEN-2", "spec/config.md#CFG-15"))
    return groups
