"""Mutation tests generated from the schemas and the layout documents, never written case by case.

- For every field a profile's schema requires in each builder variant, removing it yields
  `config.required` at that field's pointer.
- For every tensor of every layout document (each switched on by some variant), a missing tensor, a
  wrong shape and a wrong dtype each yield the code the layout document declares.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from builders import VARIANTS, config_of
from specfmt import validate
from specfmt.defaults import resolve
from specfmt.findings import pointer
from specfmt.layout import expand
from specfmt.safetensors_file import write_sparse
from specfmt.schemas import ALGORITHMS, layout, load

SCHEMAS = {"compat": load("config.schema.json"), "strict": load("config.strict.schema.json")}
WRONG_DTYPE = {"float": "I32", "int64": "I32", "bool": "U8"}
CONCRETE_DTYPE = {"float": "F32", "int64": "I64", "bool": "BOOL"}


def _deref(schema: dict, node):
    while isinstance(node, dict) and "$ref" in node:
        node = {**schema["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def required_fields(schema: dict, doc) -> list[tuple[tuple, str]]:
    """(path, key) for every key the schema requires of an object present in `doc`."""
    out: list[tuple[tuple, str]] = []

    def visit(node, value, path: tuple) -> None:
        node = _deref(schema, node)
        if not isinstance(node, dict):
            return
        if isinstance(value, dict):
            out.extend((path, key) for key in node.get("required", []) if key in value)
            for key, prop in node.get("properties", {}).items():
                if key in value:
                    visit(prop, value[key], path + (key,))
        if isinstance(value, list) and "items" in node:
            for i, item in enumerate(value):
                visit(node["items"], item, path + (i,))
        for member in node.get("allOf", []):
            if "if" in member:
                condition = _deref(schema, member["if"])
                if Draft202012Validator(condition).is_valid(value):
                    visit(member["then"], value, path)
            else:
                visit(member, value, path)
        for member in node.get("anyOf", []):
            if Draft202012Validator({**_deref(schema, member), "$defs": schema["$defs"]}).is_valid(value):
                visit(member, value, path)

    visit(schema, doc, ())
    return sorted(set(out), key=repr)


def removal_cases():
    for variant in VARIANTS:
        for profile, schema in SCHEMAS.items():
            for path, key in required_fields(schema, VARIANTS[variant]):
                where = ".".join(map(str, path + (key,)))
                yield pytest.param(variant, profile, path, key, id=f"{variant}-{profile}-{where}")


def weights_entries(config: dict) -> list[tuple[str, str, list[int]]]:
    """The header entries the layout implies for `config`: (name, dtype, shape)."""
    resolved = resolve(config)
    _, expected, errors = expand(resolved["speculators_model_type"], resolved)
    assert not errors, errors
    seen: dict[str, tuple[str, str, list[int]]] = {}
    for e in expected:
        if e.active and e.name not in seen:
            seen[e.name] = (e.name, CONCRETE_DTYPE[e.dtype], e.shape)
    return list(seen.values())


def checkpoint(tmp_path: Path, config: dict, entries) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if entries:
        write_sparse(tmp_path / "model.safetensors", entries)
    return tmp_path


def test_the_removal_cases_cover_every_variant_and_both_profiles():
    cases = list(removal_cases())
    assert {c.values[0] for c in cases} == set(VARIANTS)
    assert {c.values[1] for c in cases} == {"compat", "strict"}
    assert len(cases) > 500


@pytest.mark.parametrize(("variant", "profile", "path", "key"), list(removal_cases()))
def test_removing_a_required_field_reports_config_required_at_its_pointer(variant, profile, path, key, tmp_path):
    config = config_of(variant)
    entries = weights_entries(config)
    node = config
    for part in path:
        node = node[part]
    del node[key]
    report = validate(checkpoint(tmp_path, config, entries), profile)
    assert ("config.required", pointer(*path, key)) in report.codes()
    assert not report.ok


def layout_entries(algorithm: str) -> list[dict]:
    return layout(algorithm)["tensors"]


def test_every_layout_entry_is_switched_on_by_some_variant():
    active: dict[str, set[tuple[str, str]]] = {a: set() for a in ALGORITHMS}
    for variant in VARIANTS:
        resolved = resolve(config_of(variant))
        algorithm = resolved["speculators_model_type"]
        _, expected, _ = expand(algorithm, resolved)
        active[algorithm] |= {(e.entry["name"], e.entry.get("when", "")) for e in expected if e.active}
    missing = {a: {(e["name"], e.get("when", "")) for e in layout_entries(a)} - active[a] for a in ALGORITHMS}
    assert all(not m for m in missing.values()), missing


def tensor_cases():
    for variant in VARIANTS:
        for name, _, _ in weights_entries(config_of(variant)):
            yield pytest.param(variant, name, id=f"{variant}-{name}")


def _entry_for(config: dict, name: str):
    resolved = resolve(config)
    _, expected, _ = expand(resolved["speculators_model_type"], resolved)
    return next(e for e in expected if e.active and e.name == name)


@pytest.mark.parametrize(("variant", "name"), list(tensor_cases()))
def test_a_missing_tensor_reports_its_layout_code(variant, name, tmp_path):
    config = config_of(variant)
    entries = [e for e in weights_entries(config) if e[0] != name]
    e = _entry_for(config, name)
    report = validate(checkpoint(tmp_path, config, entries), "compat")
    if e.required:
        assert (e.entry.get("missing_code", "layout.missing"), pointer(name)) in report.codes()
    else:
        assert report.codes() == set()


@pytest.mark.parametrize(("variant", "name"), list(tensor_cases()))
def test_a_wrong_shape_reports_its_layout_code(variant, name, tmp_path):
    config = config_of(variant)
    entries = [(n, d, (s[:-1] + [s[-1] + 1]) if n == name else s) for n, d, s in weights_entries(config)]
    e = _entry_for(config, name)
    report = validate(checkpoint(tmp_path, config, entries), "compat")
    assert (e.entry.get("shape_code", "layout.shape"), pointer(name, "shape")) in report.codes()


@pytest.mark.parametrize(("variant", "name"), list(tensor_cases()))
def test_a_wrong_dtype_reports_layout_dtype(variant, name, tmp_path):
    config = config_of(variant)
    e = _entry_for(config, name)
    entries = [(n, WRONG_DTYPE[e.dtype] if n == name else d, s) for n, d, s in weights_entries(config)]
    report = validate(checkpoint(tmp_path, config, entries), "compat")
    assert ("layout.dtype", pointer(name, "dtype")) in report.codes()


def test_a_float_tensor_in_another_float_dtype_is_a_dtype_mismatch_hazard(tmp_path):
    config = config_of("eagle3")
    entries = [(n, "F16" if n == "fc.weight" else d, s) for n, d, s in weights_entries(config)]
    path = checkpoint(tmp_path, config, entries)
    assert validate(path, "compat").codes() == {("hazard.dtype_mismatch", "/fc.weight/dtype")}
    assert not validate(path, "strict").ok


def test_a_tensor_outside_the_layout_is_unexpected(tmp_path):
    config = config_of("eagle3")
    entries = weights_entries(config) + [("model.fc.weight", "F32", [2, 2])]
    assert validate(checkpoint(tmp_path, config, entries)).codes() == {("layout.unexpected", "/model.fc.weight")}


def test_d2t_at_full_vocabulary_is_a_hazard(tmp_path):
    config = config_of("eagle3_qwen3_2l_fullvocab_normfc")
    entries = weights_entries(config) + [("d2t", "I64", [128])]
    assert validate(checkpoint(tmp_path, config, entries)).codes() == {("hazard.d2t_full_vocab", "/d2t")}


def test_a_gap_in_the_middle_of_the_layers_is_reported_tensor_by_tensor(tmp_path):
    config = config_of("independent")
    config["transformer_layer_config"]["num_hidden_layers"] = 3
    entries = [e for e in weights_entries(config) if not e[0].startswith("model.layers.1.")]
    codes = validate(checkpoint(tmp_path, config, entries)).codes()
    assert ("layout.missing", "/model.layers.1.self_attn.q_proj.weight") in codes
    assert not any(code == "hazard.layers_missing" for code, _ in codes)


def test_medusa_without_verifier_shape_facts_reports_them_required(tmp_path):
    config = config_of("medusa")
    del config["speculators_config"]["verifier"]["vocab_size"]
    report = validate(checkpoint(tmp_path, config, []), "compat")
    assert ("config.required", "/speculators_config/verifier/vocab_size") in report.codes()


def _objects(doc, path=()):
    """Every object in `doc` with its path."""
    if isinstance(doc, dict):
        yield path, doc
        for key, value in doc.items():
            yield from _objects(value, path + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _objects(value, path + (i,))


@pytest.mark.parametrize("variant", ["eagle3", "dspark_rnn_bias", "medusa", "mlp_speculator", "mtp", "ngram"])
def test_a_config_value_of_any_type_anywhere_never_crashes_the_validator(variant, tmp_path):
    base = config_of(variant)
    entries = weights_entries(base)
    path = checkpoint(tmp_path, base, entries)
    for where, obj in list(_objects(base)):
        for key in list(obj):
            for value in (None, -1, "x", [1], {"a": 1}, 1e300, True):
                config = copy.deepcopy(base)
                node = config
                for part in where:
                    node = node[part]
                node[key] = value
                (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
                report = validate(path, "strict")
                assert all(f.code for f in report.findings)
