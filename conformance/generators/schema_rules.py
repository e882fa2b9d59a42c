"""Schema-level cases for the rules no schema keyword carries: the semantic checks of spec/config.md
and the config hazards of spec/hazards.md. Where the rule is an annotation in the schema
(x-specfmt-engine-defaults, x-specfmt-aux-layer-ids, x-specfmt-excludes), the tests are generated
from the annotation; the rest are listed here, one line each.
"""

from __future__ import annotations

import copy
import re

from conformance.generators import variants
from conformance.generators.common import PROFILES, slug
from conformance.generators.schema_level import SCHEMAS, VARIANTS, group, removed, replaced, schema_test
from specfmt.config_checks import REMOVED_PROPOSAL_TYPES
from specfmt.defaults import applicable_properties
from specfmt.findings import pointer, render
from specfmt.schemas import layout, load

COMPAT = load("config.schema.json")
ABSENT = object()  # marks a mutation that removes the field


def _annotated(annotation: str) -> list[tuple[str, str, dict]]:
    """(variant, property, property schema) for the first variant of each property carrying `annotation`."""
    seen: dict[str, tuple[str, str, dict]] = {}
    for name, config in VARIANTS.items():
        for prop, schema in applicable_properties(config, COMPAT).items():
            if annotation in schema and prop not in seen:
                seen[prop] = (name, prop, schema)
    return [seen[p] for p in sorted(seen)]


def default_conflicts() -> list[dict]:
    """A field whose default differs between engines, left out: a hazard (CFG-11)."""
    out = []
    for profile in PROFILES:
        code = "hazard.default_conflict" if profile == "compat" else "config.required"
        tests = []
        for name, prop, schema in _annotated("x-specfmt-engine-defaults"):
            readings = ", ".join(f"{e} reads {render(v)}" for e, v in schema["x-specfmt-engine-defaults"].items())
            tests.append(schema_test(slug(prop), f"{prop} absent from the {name} variant: {readings}",
                                     removed(VARIANTS[name], (prop,)), profile, (code, pointer(prop))))
        out.append(group(f"cfg.default-conflict.{profile}", "fields whose engine defaults disagree, left out",
                         profile, tests, "spec/config.md#CFG-11"))
    return out


def _aux_mutations(prop: str, ids: list[int], layers: int, nullable: bool, profile: str) -> list[tuple]:
    """(id suffix, what, new ids or ABSENT, targeted (code, pointer) or None for a valid document)."""
    order, implicit = ("hazard.aux_layer_ids_order", pointer(prop)), ("hazard.aux_layer_ids_implicit", pointer(prop))
    rows = [("reversed", "listed in decreasing order", ids[::-1], order),
            ("repeated", "with the last id repeated", ids + ids[-1:], order),
            ("past-last-layer", f"with an id past the verifier's {layers} layers", ids[:-1] + [layers + 1],
             ("config.aux_layer_range", pointer(prop, len(ids) - 1))),
            ("last-layer", f"ending at id {layers}, the last decoder output (valid)", ids[:-1] + [layers], None),
            ("embedding", "starting at id 0, the embedding output (valid)", [0] + ids[1:], None)]
    if nullable:
        rows.append(("null", "null (engines fall back to a heuristic)", None, implicit))
    absent = implicit if nullable and profile == "compat" else ("config.required", pointer(prop))
    return rows + [("absent", "absent", ABSENT, absent)]


def aux_layer_ids() -> list[dict]:
    """Aux layer ids: order, range, the boundary ids 0 and N, null and absent (CFG-9)."""
    out = []
    for profile in PROFILES:
        tests = []
        for name, prop, schema in _annotated("x-specfmt-aux-layer-ids"):
            config = VARIANTS[name]
            layers = config["speculators_config"]["verifier"]["num_hidden_layers"]
            nullable = {"type": "null"} in schema.get("anyOf", [])
            for suffix, what, ids, target in _aux_mutations(prop, config[prop], layers, nullable, profile):
                doc = removed(config, (prop,)) if ids is ABSENT else replaced(config, (prop,), ids)
                tests.append(schema_test(f"{slug(prop)}.{suffix}", f"{prop} of the {name} variant {what}", doc,
                                         profile, target))
        out.append(group(f"cfg.aux-layer-ids.{profile}", "verifier aux layer ids: order, range, boundaries, absence",
                         profile, tests, "spec/config.md#CFG-9"))
    return out


def _proposal(kind: str) -> dict:
    """A proposal method of `kind` with every field strict requires, at its schema default."""
    schema = SCHEMAS["strict"]["$defs"][f"proposal_{kind}"]
    return {"proposal_type": kind, **{k: schema["properties"][k]["default"] for k in schema.get("required", [])}}


def removed_proposal_types() -> list[dict]:
    """Proposal types that speculators >= 0.3 cannot parse: a hazard."""
    out = []
    for profile in PROFILES:
        tests = []
        for kind in REMOVED_PROPOSAL_TYPES:
            config = copy.deepcopy(VARIANTS["eagle3"])
            config["speculators_config"].update(proposal_methods=[_proposal(kind)], default_proposal_method=kind)
            tests.append(schema_test(slug(kind), f"the eagle3 variant with only a {kind} proposal method", config,
                                     profile, ("hazard.proposal_type_removed",
                                               "/speculators_config/proposal_methods/0/proposal_type")))
        out.append(group(f"cfg.proposal-type-removed.{profile}", "proposal types removed in speculators 0.3.0",
                         profile, tests))
    return out


def layer_model_type() -> list[dict]:
    """transformer_layer_config without model_type: readers disagree on the family."""
    ptr = "/transformer_layer_config/model_type"
    doc = removed(VARIANTS["eagle3"], ("transformer_layer_config", "model_type"))
    groups = []
    for profile in PROFILES:
        code = "hazard.layer_model_type_implicit" if profile == "compat" else "config.required"
        tests = [schema_test("absent", "model_type absent from the transformer_layer_config of the eagle3 variant",
                             doc, profile, (code, ptr))]
        groups.append(group(f"cfg.layer-model-type.{profile}", "a draft decoder config without model_type", profile,
                            tests, "spec/config.md#CFG-10"))
    return groups


def exclusive() -> list[dict]:
    """Two fields that exclude each other, both true (x-specfmt-excludes)."""
    tests = []
    for name, prop, schema in _annotated("x-specfmt-excludes"):
        other = schema["x-specfmt-excludes"]
        tests.append(schema_test(f"{slug(prop)}.{slug(other)}", f"{prop} and {other} both true in the {name} variant",
                                 {**VARIANTS[name], prop: True, other: True}, "compat",
                                 ("config.exclusive", pointer(prop))))
    return [group("cfg.exclusive.compat", "fields that exclude each other, both set", "compat", tests)]


def verifier_facts() -> list[dict]:
    """The verifier facts an algorithm's layout derives shapes from are required under compat too (CFG-8)."""
    tests = []
    for name, config in VARIANTS.items():
        algorithm = config["speculators_model_type"]
        exprs = " ".join(s["expr"] for s in layout(algorithm)["symbols"].values())
        for key in sorted(set(re.findall(r"speculators_config\.verifier\.([a-z_]+)", exprs))):
            test_id = f"{slug(algorithm)}.{slug(key)}"
            if all(t["id"] != test_id for t in tests):
                ptr = pointer("speculators_config", "verifier", key)
                tests.append(schema_test(test_id, f"verifier {key} absent from the {name} variant, whose layout "
                                         "needs it", removed(config, ("speculators_config", "verifier", key)),
                                         "compat", ("config.required", ptr)))
    return [group("cfg.verifier-facts.compat", "verifier facts the layout needs, absent", "compat", tests,
                  "spec/config.md#CFG-8")]


NAME_OR_PATH = ("speculators_config", "verifier", "name_or_path")
# (test id, name_or_path, what it is, the strict finding or None); under compat every one is valid (CFG-8)
VERIFIER_PATHS = [
    ("hub-id", "meta-llama/Llama-3.1-8B-Instruct", "a hub repository id", None),
    ("hub-name", "gpt2", "a hub name without a namespace", None),
    ("null", None, "null", "config.type"),
    ("absolute-path", "/models/llama-3.1-8b", "an absolute local path", "config.pattern"),
    ("relative-path", "./verifier", "a relative local path", "config.pattern"),
    ("nested-path", "org/models/llama", "a path with two separators", "config.pattern"),
    ("double-dash", "org--x/llama", "a hub-like id with a double dash, which the hub refuses", "config.pattern"),
]


def verifier_path() -> list[dict]:
    """verifier.name_or_path: null or a local path is accepted under compat, refused under strict (CFG-8)."""
    out = []
    for profile in PROFILES:
        tests = [schema_test(f"verifier-path.{test_id}", f"name_or_path {what}", replaced(
                    VARIANTS["eagle3"], NAME_OR_PATH, value), profile,
                    (code, pointer(*NAME_OR_PATH)) if code and profile == "strict" else None)
                 for test_id, value, what, code in VERIFIER_PATHS]
        out.append(group(f"cfg.verifier-path.{profile}", "which verifier names an engine can resolve", profile,
                         tests, "spec/config.md#CFG-8"))
    return out


H, V = variants.H, variants.V
# (test id, variant, description, {path: new value}, targeted (code, pointer) or None for a valid document)
RULES = [
    ("algorithm-mismatch", "eagle3", "speculators_config.algorithm eagle under speculators_model_type eagle3",
     {("speculators_config", "algorithm"): "eagle"}, ("config.algorithm_mismatch", "/speculators_config/algorithm")),
    ("default-proposal-method", "eagle3", "default_proposal_method sampling names no entry of proposal_methods",
     {("speculators_config", "default_proposal_method"): "sampling"},
     ("config.default_proposal_method", "/speculators_config/default_proposal_method")),
    ("verifier.vocab-size", "eagle3", f"draft vocab_size {V + 1} against the verifier's {V}",
     {("transformer_layer_config", "vocab_size"): V + 1}, ("config.verifier_mismatch",
                                                            "/transformer_layer_config/vocab_size")),
    ("verifier.target-hidden-size", "eagle3", f"target_hidden_size {H + 16} against the verifier's hidden_size {H}",
     {("target_hidden_size",): H + 16}, ("config.verifier_mismatch", "/target_hidden_size")),
    ("verifier.draft-hidden-size", "eagle3", f"target_hidden_size null and draft hidden_size {H + 16} against the "
     f"verifier's {H}", {("transformer_layer_config", "hidden_size"): H + 16},
     ("config.verifier_mismatch", "/transformer_layer_config/hidden_size")),
    ("verifier.mtp-num-hidden-layers", "mtp", "mtp num_hidden_layers one less than the verifier's",
     {("transformer_layer_config", "num_hidden_layers"): variants.N_VERIFIER - 1},
     ("config.verifier_mismatch", "/transformer_layer_config/num_hidden_layers")),
    ("consistency.draft-vocab-size", "eagle3", f"draft_vocab_size {V + 1} past the verifier vocabulary {V}",
     {("draft_vocab_size",): V + 1}, ("config.consistency", "/draft_vocab_size")),
    ("consistency.draft-vocab-size-full", "eagle3", f"draft_vocab_size {V}, the full vocabulary (valid)",
     {("draft_vocab_size",): V}, None),
    ("consistency.mask-token-id", "peagle", f"mask_token_id {V} past the last token id {V - 1}",
     {("mask_token_id",): V}, ("config.consistency", "/mask_token_id")),
    ("consistency.mask-token-id-last", "peagle", f"mask_token_id {V - 1}, the last token id (valid)",
     {("mask_token_id",): V - 1}, None),
    ("consistency.prompt-lookup", "ngram", "prompt_lookup_min 4 above prompt_lookup_max 3",
     {("prompt_lookup_min",): 4}, ("config.consistency", "/prompt_lookup_max")),
    ("consistency.top-k-tokens-per-head", "mlp_speculator", "two top_k_tokens_per_head entries for three heads",
     {("top_k_tokens_per_head",): [4, 3]}, ("config.consistency", "/top_k_tokens_per_head")),
    ("consistency.confidence-head-with-markov", "dspark", "confidence_head_with_markov with markov_rank 0",
     {("markov_rank",): 0}, ("config.consistency", "/confidence_head_with_markov")),
    # A JSON boolean is not an integer: config.type alone, never compared (CFG-13), though Python's bool is an int.
    ("consistency.markov-rank-false", "dspark", "markov_rank false, not 0: config.type only",
     {("markov_rank",): False}, ("config.type", "/markov_rank")),
    ("consistency.n-predict-true", "mlp_speculator", "n_predict true with two top_k_tokens_per_head entries: "
     "config.type only", {("n_predict",): True, ("top_k_tokens_per_head",): [4, 3]}, ("config.type", "/n_predict")),
    ("consistency.prompt-lookup-max-false", "ngram", "prompt_lookup_max false: config.type only, not compared "
     "with prompt_lookup_min", {("prompt_lookup_max",): False}, ("config.type", "/prompt_lookup_max")),
    ("verifier.vocab-size-true", "eagle3", "transformer_layer_config.vocab_size true: config.type only, not "
     "compared with the verifier's or with draft_vocab_size", {("transformer_layer_config", "vocab_size"): True},
     ("config.type", "/transformer_layer_config/vocab_size")),
]


def listed_rules() -> list[dict]:
    """The semantic rules of spec/config.md that no schema keyword carries, one mutation each."""
    out = []
    for profile in PROFILES:
        tests = []
        for test_id, name, description, changes, target in RULES:
            doc = copy.deepcopy(VARIANTS[name])
            for path, value in changes.items():
                doc = replaced(doc, path, value)
            tests.append(schema_test(test_id, f"{description} ({name} variant)", doc, profile, target))
        out.append(group(f"cfg.rules.{profile}", "cross-field rules of config.md", profile, tests))
    return out
