"""Access to the schema documents under schemas/ (shipped in the package as specfmt/_schemas).

Every fact the validator uses (fields, defaults, tensor names, shapes, dtypes, codes) is read from
these files; nothing here restates one.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "_schemas"
BASE_URI = "https://specfmt.dev/schemas/"


def _newest_version() -> str:
    """The format version these schemas define: the newest schemas/v<major>.<minor> directory."""
    versions = [p.name[1:] for p in SCHEMA_DIR.iterdir() if p.is_dir() and re.fullmatch(r"v\d+\.\d+", p.name)]
    return max(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


VERSION = _newest_version()  # every module reads the format version from here


def version_dir(version: str = VERSION) -> Path:
    return SCHEMA_DIR / f"v{version}"


@cache
def load(name: str, version: str = VERSION) -> dict[str, Any]:
    """A schema document by its file name relative to schemas/v<version>/."""
    with open(version_dir(version) / name, encoding="utf-8") as f:
        return json.load(f)


def schema_names(version: str = VERSION) -> list[str]:
    root = version_dir(version)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))


CODES: dict[str, dict[str, str]] = load("codes.json")["codes"]
KEYWORD_CODES: dict[str, str] = {keyword: code for code, keywords in load("codes.json")["keywords"]["codes"].items()
                                 for keyword in keywords}


def keyword_code(keyword: str) -> str:
    """The code of a schema violation by its failing keyword (CFG-2), as codes.json maps it."""
    return KEYWORD_CODES.get(keyword, load("codes.json")["keywords"]["otherwise"])

ALGORITHMS: frozenset[str] = frozenset(n.removeprefix("layouts/").removesuffix(".json") for n in schema_names()
                                       if n.startswith("layouts/") and not n.startswith("layouts/_"))
SAFETENSORS: dict[str, Any] = load("safetensors.json")
# The decoder families a transformer_layer_config may name (CFG-10): its model_type enum.
LAYER_FAMILIES: tuple[str, ...] = tuple(load("config.schema.json")["$defs"]["layer_config"]["properties"]
                                        ["model_type"]["enum"])


@cache
def registry():
    """A referencing registry holding every schema of every version under its $id."""
    from referencing import Registry, Resource

    resources = []
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "$id" in doc:
            resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _ecma_regex(pattern: str) -> str:
    """JSON Schema patterns are ECMA-262 regexes; there `$` matches only at the end of the input, while
    Python's `$` also matches before a final newline. Anchor with `\\Z` instead."""
    return re.sub(r"(?<!\\)\$$", r"\\Z", pattern)


def _pattern(validator, pattern, instance, schema):
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not re.search(_ecma_regex(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def validator_class():
    """Draft 2020-12 with ECMA-262 `pattern` semantics, so verdicts match other languages' validators."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {"pattern": _pattern})


@cache
def config_validator(profile: str):
    """A draft 2020-12 validator for config.json under `profile` (strict or compat)."""
    name = "config.strict.schema.json" if profile == "strict" else "config.schema.json"
    return validator_class()(load(name), registry=registry())


@cache
def layout(algorithm: str) -> dict[str, Any]:
    """The layout document of `algorithm` with fragment includes expanded.

    Each expanded entry carries `params`: the fragment parameters bound to expressions of the
    including document, evaluated per loop instance by the binder.
    """
    doc = load(f"layouts/{algorithm}.json")
    tensors = []
    for entry in doc["tensors"]:
        if "include" not in entry:
            tensors.append(dict(entry, params={}))
            continue
        fragment = load(f"layouts/_{entry['include']}.json")
        for sub in fragment["tensors"]:
            when = [w for w in (entry.get("when"), sub.get("when")) if w]
            expanded = dict(sub, name=entry["prefix"] + sub["name"], role=entry["role_prefix"] + sub["role"],
                            params=entry["with"])
            expanded.pop("when", None)
            if when:
                expanded["when"] = " and ".join(f"({w})" for w in when)
            if "for" in entry:
                expanded["for"] = entry["for"]
            tensors.append(expanded)
    return dict(doc, tensors=tensors)
