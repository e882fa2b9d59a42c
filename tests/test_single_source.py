"""Facts declared once, in schemas/ (or, for the standalone runner, in its suite's own files), and read from there:
each test fails when a copy comes back in code."""

import ast
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from specfmt import expr, nn
from specfmt.algorithms import eagle3
from specfmt.config_checks import _from_error
from specfmt.defaults import applicable_properties
from specfmt.schemas import KEYWORD_CODES, LAYER_FAMILIES, VERSION, layout, load, schema_names, validator_class
from specfmt.train.recipes.eagle3 import eagle3_aux_ids
from specfmt.verifier import resolve_layer_config
from specfmt_conformance.suite import META_DIR, Suite, required_keys

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
HAVE_AJV = (ROOT / "node_modules" / "ajv" / "package.json").is_file()

# One property `x` breaking one keyword each: (keyword, schema of x, value of x). Two keywords codes.json does not
# list (uniqueItems, multipleOf) check its `otherwise`.
BROKEN = [("type", {"type": "integer"}, "a"), ("enum", {"enum": [1]}, 2), ("const", {"const": 1}, 2),
          ("minimum", {"minimum": 1}, 0), ("maximum", {"maximum": 1}, 2),
          ("exclusiveMinimum", {"exclusiveMinimum": 0}, 0), ("exclusiveMaximum", {"exclusiveMaximum": 1}, 1),
          ("minItems", {"minItems": 1}, []), ("maxItems", {"maxItems": 0}, [1]),
          ("minLength", {"minLength": 2}, "a"), ("maxLength", {"maxLength": 1}, "ab"),
          ("minProperties", {"minProperties": 1}, {}), ("maxProperties", {"maxProperties": 0}, {"a": 1}),
          ("pattern", {"pattern": "^a$"}, "b"), ("not", {"not": {}}, 1),
          ("uniqueItems", {"uniqueItems": True}, [1, 1]), ("multipleOf", {"multipleOf": 2}, 3)]
# The Node adapter's own mapping (config.cjs mapErrors) over Ajv's errors for the same documents.
NODE_MAP = """
const Ajv2020 = require("ajv/dist/2020");
const { mapErrors } = require("./conformance/adapters/node/config.cjs");
const ajv = new Ajv2020({ allErrors: true, verbose: true, logger: false });
const out = {};
for (const [keyword, schema, doc] of JSON.parse(process.argv[1])) {
  const validate = ajv.compile(schema);
  const found = [];
  if (!validate(doc)) mapErrors(validate.errors, "compat", "", found);
  out[keyword] = found.map((f) => [f.code, f.pointer]);
}
process.stdout.write(JSON.stringify(out));
"""


def documents() -> list[tuple[str, dict, dict]]:
    """(keyword, schema, document) with the violation at /x; `required` leaves x out."""
    docs = [("required", {"required": ["x"]}, {})]
    return docs + [(keyword, {"properties": {"x": schema}}, {"x": value}) for keyword, schema, value in BROKEN]


def python_codes() -> dict[str, list[list[str]]]:
    out = {}
    for keyword, schema, doc in documents():
        findings = [f for error in validator_class()(schema).iter_errors(doc) for f in _from_error(error, "compat")]
        out[keyword] = [[f.code, f.pointer] for f in findings]
    return out


def test_every_keyword_codes_json_maps_is_broken_by_one_document():
    assert {keyword for keyword, _, _ in documents()} >= set(KEYWORD_CODES)


def test_no_keyword_is_listed_under_two_codes():
    listed = [k for keywords in load("codes.json")["keywords"]["codes"].values() for k in keywords]
    assert sorted(listed) == sorted(set(listed)) == sorted(KEYWORD_CODES)


def test_the_reference_reports_each_broken_keyword_with_the_code_codes_json_gives_it():
    otherwise = load("codes.json")["keywords"]["otherwise"]
    expected = {k: [[KEYWORD_CODES.get(k, otherwise), "/x"]] for k, _, _ in documents()}
    assert python_codes() == expected


def test_max_length_is_a_range_violation_as_cfg_2_says_bounds_and_lengths_are():
    assert KEYWORD_CODES["maxLength"] == KEYWORD_CODES["minLength"] == KEYWORD_CODES["maximum"] == "config.range"


@pytest.mark.node
@pytest.mark.skipif(NODE is None or not HAVE_AJV, reason="needs node and node_modules/ajv")
def test_the_node_adapter_maps_every_keyword_as_the_reference_does():
    run = subprocess.run([NODE, "-e", NODE_MAP, json.dumps(documents())], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, check=True)
    assert json.loads(run.stdout) == python_codes()


# Code that reads the format version (specfmt.schemas.VERSION, or for the standalone runner its manifest's
# format_version). models.py is generated from the schema's const and checked by `make check`.
VERSIONED_CODE = ["reference/specfmt", "conformance/generators", "conformance/specfmt_conformance", "scripts",
                  "benchmarks"]
GENERATED = {"reference/specfmt/models.py"}


def string_literals(path: Path) -> list[str]:
    """The string constants of a module, docstrings aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def version_literals(path: Path) -> list[str]:
    """String constants that spell the version: "1.0", or inside "v1.0" and "/1.0/"."""
    return [f"{path.relative_to(ROOT)}: {text!r}" for text in string_literals(path)
            if text == VERSION or f"v{VERSION}" in text or f"/{VERSION}/" in text]


def test_no_module_spells_the_format_version_it_can_read():
    files = [p for d in VERSIONED_CODE for p in sorted((ROOT / d).rglob("*.py"))
             if p.relative_to(ROOT).as_posix() not in GENERATED]
    assert [hit for path in files for hit in version_literals(path)] == []


def test_the_version_is_the_schema_directory_and_every_id_and_the_strict_const_agree():
    assert (ROOT / "schemas" / f"v{VERSION}" / "config.schema.json").is_file()
    assert load("config.strict.schema.json")["properties"]["speculators_format_version"]["const"] == VERSION
    ids = [load(name)["$id"] for name in schema_names() if "$id" in load(name)]
    assert ids and all(f"/schemas/v{VERSION}/" in i for i in ids)


def test_the_decoder_families_are_the_schema_model_type_enum_and_no_module_lists_them_again():
    model_type = load("config.schema.json")["$defs"]["layer_config"]["properties"]["model_type"]
    assert LAYER_FAMILIES == tuple(model_type["enum"])
    copies = []
    for path in sorted((ROOT / "reference" / "specfmt").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() in GENERATED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant)} & set(LAYER_FAMILIES)
                if len(names) >= 2:
                    copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert copies == []


LAYER = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 8, "num_hidden_layers": 1, "vocab_size": 16}


def test_an_absent_rope_theta_reads_the_schema_default():
    default = load("config.schema.json")["$defs"]["layer_config"]["properties"]["rope_theta"]["default"]
    assert nn.LayerConfig.from_config(resolve_layer_config(dict(LAYER))).rope_theta == default


def test_llama3_scaling_fills_absent_keys_with_the_defaults_the_schema_declares(monkeypatch):
    declared = load("config.schema.json")["$defs"]["rope_llama3"]["properties"]
    assert nn.LLAMA3_PARAMETERS == declared
    changed = {"low_freq_factor": 2.0, "high_freq_factor": 8.0, "original_max_position_embeddings": 64}
    monkeypatch.setattr(nn, "LLAMA3_PARAMETERS", {k: {**p, "default": changed.get(k, p.get("default"))}
                                                  for k, p in declared.items()})

    def inv_freq(scaling: dict):
        return nn.rope_inv_freq(nn.LayerConfig.from_config(resolve_layer_config(
            dict(LAYER, rope_parameters={"rope_type": "llama3", "factor": 8.0, **scaling}))))

    assert inv_freq({}).equal(inv_freq(changed))  # the runtime follows the declared defaults, whatever they are
    assert not inv_freq({}).equal(inv_freq({k: declared[k]["default"] for k in changed}))


def test_the_runner_requires_the_keys_its_meta_schemas_require():
    def meta(name):
        return json.loads((META_DIR / name).read_text(encoding="utf-8"))

    required = Suite().required
    assert required == required_keys(META_DIR)
    assert required["schema-group"] == tuple(meta("schema-group.schema.json")["$defs"]["group"]["required"])
    assert required["schema-test"] == tuple(meta("schema-group.schema.json")["$defs"]["test"]["required"])
    assert required["checkpoint"] == tuple(meta("checkpoint-case.schema.json")["required"])
    assert required["manifest-case"] == tuple(meta("manifest.schema.json")["properties"]["cases"]["items"]["required"])


def fallback_of(algorithm: str) -> list[str]:
    props = applicable_properties({"speculators_model_type": algorithm}, load("config.schema.json"))
    return props["eagle_aux_hidden_state_layer_ids"]["x-specfmt-fallback"]


def test_every_nullable_aux_layer_id_list_declares_what_engines_read_for_null():
    for algorithm in ("eagle3", "peagle", "dflash", "dspark"):
        props = applicable_properties({"speculators_model_type": algorithm}, load("config.schema.json"))
        for prop in props.values():
            if prop.get("x-specfmt-aux-layer-ids") and {"type": "null"} in prop.get("anyOf", []):
                assert [expr.evaluate(e, {"N": 32}, {}) for e in prop["x-specfmt-fallback"]]


def test_the_runtime_and_the_trainer_take_the_fallback_ids_from_the_schema_annotation(monkeypatch):
    assert fallback_of("eagle3") == fallback_of("peagle")
    assert eagle3.default_aux_ids(32) == tuple(expr.evaluate(e, {"N": 32}, {}) for e in fallback_of("eagle3"))
    monkeypatch.setattr(eagle3, "AUX_IDS", {"x-specfmt-fallback": ["1", "N - 1"]})
    assert eagle3.default_aux_ids(32) == (1, 31)
    assert eagle3_aux_ids(32) == (1, 31)
    spelled = [hit for path in sorted((ROOT / "reference" / "specfmt").rglob("*.py"))
               for hit in string_literals(path) if "N // 2" in hit]
    assert spelled == []  # the hazard message renders the annotation too


def test_the_layout_counts_as_many_aux_layers_for_null_ids_as_the_fallback_names():
    # The layout language has no list literal, so A restates the fallback's length; this is its drift check.
    for algorithm in ("eagle3", "peagle"):
        symbol = layout(algorithm)["symbols"]["A"]["expr"]
        assert expr.evaluate(symbol, {}, {"eagle_aux_hidden_state_layer_ids": None}) == len(fallback_of(algorithm))


def test_the_generators_and_the_example_script_import_nothing_from_tests():
    test_modules = {p.stem for p in (ROOT / "tests").rglob("*.py")}
    sources = [*(ROOT / "conformance" / "generators").rglob("*.py"), ROOT / "scripts" / "make_examples.py"]
    imported = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            imported += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in test_modules | {"tests"}]
    assert imported == []


# Facts that are numbers or key lists, not strings: the schema's decoder keys (a tuple of them is a second list to
# keep in step), its aux-id fallback (a literal [2, n // 2, n - 3] is a second formula) and its numeric defaults (a
# `.get("num_key_value_heads", 32)` is a second default). Copies in modules whose owners are switching them to the
# schema-fed helpers of convert/common.py are listed here; the list may only shrink.
LEFT_TO_SWITCH = {("reference/specfmt/train/recipes/eagle3.py", "the decoder keys")}


def numeric_defaults() -> dict[str, set]:
    """Each property name the config schema gives a numeric default, with its defaults (one per branch)."""
    out: dict[str, set] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                value = prop.get("default") if isinstance(prop, dict) else None
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.setdefault(name, set()).add(value)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(load("config.schema.json"))
    return out


def integer_of(node: ast.AST, scope: dict[str, int]) -> int | None:
    """An integer expression of constants and one name (+, -, *, //), evaluated in `scope`; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)):
        a, b = integer_of(node.left, scope), integer_of(node.right, scope)
        if a is None or b is None or (isinstance(node.op, ast.FloorDiv) and b == 0):
            return None
        return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b, ast.FloorDiv: a // b if b else 0}[type(node.op)]
    return None


def spells_the_fallback(node: ast.AST) -> bool:
    """A list or tuple whose items, for every verifier depth tried, are the schema's fallback aux ids."""
    names = {n.id for e in node.elts for n in ast.walk(e) if isinstance(n, ast.Name)}
    if len(names) != 1:
        return False
    (name,) = names
    return all([integer_of(e, {name: n}) for e in node.elts] == [expr.evaluate(f, {"N": n}, {}) for f in
                                                                  fallback_of("eagle3")] for n in (12, 32, 81))


def copied_facts(path: Path, layer_keys: set[str], defaults: dict[str, set]) -> set[str]:
    """Which schema facts that are not strings the module spells again."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            strings = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(strings) >= 5 and set(strings) <= layer_keys:
                found.add("the decoder keys")
            if len(node.elts) >= 2 and spells_the_fallback(node):
                found.add("the aux-id fallback")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and len(node.args) == 2 and all(isinstance(a, ast.Constant) for a in node.args):
            key, value = (a.value for a in node.args)
            if not isinstance(value, bool) and value in defaults.get(key, ()):
                found.add(f"the default of {key}")
    return found


def schema_layer_keys() -> set[str]:
    from specfmt.convert.common import LAYER_KEYS

    defs = load("config.schema.json")["$defs"]
    declared = {k for name, d in defs.items() if name.startswith("layer_") for k in d.get("properties", {})}
    assert set(LAYER_KEYS) == declared  # the converters' list is the schema's, all families
    return declared


def test_the_copy_finder_catches_a_key_list_an_aux_id_formula_and_a_default(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "vocab_size", '
                       '"rms_norm_eps")\n\ndef ids(n):\n    return [2, n // 2, n - 3]\n\n'
                       'heads = {}.get("num_key_value_heads", 32)\nother = [3, n // 2 + 1, n - 2]\n')
    assert copied_facts(planted, schema_layer_keys(), numeric_defaults()) == {
        "the decoder keys", "the aux-id fallback", "the default of num_key_value_heads"}


def test_no_module_spells_a_decoder_key_list_an_aux_id_formula_or_a_numeric_default_again():
    layer_keys, defaults = schema_layer_keys(), numeric_defaults()
    modules = [p for p in sorted((ROOT / "reference" / "specfmt").rglob("*.py"))
               if p.relative_to(ROOT).as_posix() not in GENERATED]
    copies = {(p.relative_to(ROOT).as_posix(), fact) for p in modules for fact in copied_facts(p, layer_keys, defaults)}
    assert copies <= LEFT_TO_SWITCH, sorted(copies - LEFT_TO_SWITCH)


def test_no_module_cites_a_path_that_exists_on_one_machine_only():
    machine = ("/work/", "/home/", "/root/", "/Users/", "/mnt/")
    cited = []
    for path in sorted((ROOT / "reference" / "specfmt").rglob("*.py")):
        texts = [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)]  # docstrings included
        cited += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in texts if any(m in n.value for m in machine)]
    assert cited == []
