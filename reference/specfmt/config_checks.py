"""config.json: schema validation, semantic checks and config hazards.

Spec: spec/config.md, spec/hazards.md
"""

from __future__ import annotations

import re
from typing import Any

from specfmt.defaults import applicable_properties
from specfmt.findings import Finding, finding, mismatch, pointer, render
from specfmt.schemas import ALGORITHMS, config_validator, keyword_code, layout, load

CONFIG = "config.json"
REMOVED_PROPOSAL_TYPES = ("sampling", "static_tree", "dynamic_tree")


def schema_findings(config: Any, profile: str) -> list[Finding]:
    """Every schema violation of `config` under `profile`, as findings."""
    out: list[Finding] = []
    for error in config_validator(profile).iter_errors(config):
        out += _from_error(error, profile)
    return out


_SUBJECT = {"config.type": "wrong type", "config.enum": "value not allowed", "config.range": "value out of range",
            "config.pattern": "string does not match its pattern", "config.schema": "schema rule violated"}
_BOUND = {"minimum": ">= {}", "maximum": "<= {}", "exclusiveMinimum": "> {}", "exclusiveMaximum": "< {}",
          "minItems": "at least {} items", "maxItems": "at most {} items", "minLength": "at least {} characters",
          "maxLength": "at most {} characters", "minProperties": "at least {} fields",
          "maxProperties": "at most {} fields"}


def _from_error(error, profile: str) -> list[Finding]:
    if error.validator in ("anyOf", "oneOf") and error.context:
        # The branch that matched the value's type explains the failure better than a type error.
        candidates = [e for e in error.context if e.validator != "type"] or list(error.context)
        return _from_error(max(candidates, key=lambda e: len(e.absolute_path)), profile)
    path, code = list(error.absolute_path), keyword_code(error.validator)
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return [finding(code, CONFIG, pointer(*path, name),
                        f"{name!r} is required under {profile}", expected=name, found=None)
                for name in missing]
    if code == "config.forbidden":
        message = f"{path[-1] if path else 'value'!r} is forbidden under {profile}"
        return [finding(code, CONFIG, pointer(*path), message, found=error.instance)]
    if error.validator in _BOUND:
        expected = _BOUND[error.validator].format(error.validator_value)
    elif error.validator in ("type", "const", "enum", "pattern"):
        expected = error.validator_value
    else:
        expected = error.message
    return [finding(code, CONFIG, pointer(*path), mismatch(_SUBJECT[code], expected, error.instance),
                    expected=expected, found=error.instance)]


# --- semantic checks and hazards -------------------------------------------------------------------

def get(obj: Any, *path: str) -> Any:
    """The value at `path`, or None where any level is absent or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def is_int(value: Any) -> bool:
    """A JSON integer: Python's bool is an int, JSON's true is not (CFG-13 compares only declared types)."""
    return isinstance(value, int) and not isinstance(value, bool)


def semantic_findings(config: dict, resolved: dict) -> list[Finding]:
    """Rules the schema cannot express. Each check reads only values the schema has typed."""
    checks = (_algorithm, _default_proposal, _proposal_types, _layer_model_type, _verifier_facts,
              _verifier_binding, _consistency)
    out: list[Finding] = []
    for check in checks:
        out += check(config, resolved)
    props = applicable_properties(config, load("config.schema.json"))  # the algorithm's fields, once
    for check in (_default_conflicts, _aux_layer_ids, _exclusive):
        out += check(config, resolved, props)
    return out


def _algorithm(config, resolved):
    alg, model_type = get(resolved, "speculators_config", "algorithm"), resolved.get("speculators_model_type")
    if isinstance(alg, str) and isinstance(model_type, str) and alg != model_type:
        return [finding("config.algorithm_mismatch", CONFIG, "/speculators_config/algorithm",
                        mismatch("algorithm differs from speculators_model_type", model_type, alg),
                        expected=model_type, found=alg)]
    return []


def _methods(resolved) -> list[dict]:
    methods = get(resolved, "speculators_config", "proposal_methods")
    return [m for m in methods if isinstance(m, dict)] if isinstance(methods, list) else []


def _default_proposal(config, resolved):
    default = get(resolved, "speculators_config", "default_proposal_method")
    present = [m.get("proposal_type") for m in _methods(resolved)]
    if isinstance(default, str) and present and default not in present:
        return [finding("config.default_proposal_method", CONFIG, "/speculators_config/default_proposal_method",
                        mismatch("default_proposal_method names no proposal method", present, default),
                        expected=present, found=default)]
    return []


def _proposal_types(config, resolved):
    return [finding("hazard.proposal_type_removed", CONFIG,
                    pointer("speculators_config", "proposal_methods", i, "proposal_type"),
                    f"proposal_type {m['proposal_type']!r} was removed in speculators 0.3.0, which rejects this "
                    "config; vLLM reads only proposal_methods[0].speculative_tokens", found=m["proposal_type"])
            for i, m in enumerate(_methods(resolved)) if m.get("proposal_type") in REMOVED_PROPOSAL_TYPES]


def _layer_model_type(config, resolved):
    layer = config.get("transformer_layer_config")
    if isinstance(layer, dict) and "model_type" not in layer:
        return [finding("hazard.layer_model_type_implicit", CONFIG, "/transformer_layer_config/model_type",
                        "model_type absent: speculators >= 0.7 reads qwen3, older readers read llama")]
    return []


def _default_conflicts(config, resolved, props):
    out = []
    for name, prop in props.items():
        engines = prop.get("x-specfmt-engine-defaults")
        if engines and name not in config and len({render(v) for v in engines.values()}) > 1:
            readings = ", ".join(f"{engine} reads {render(v)}" for engine, v in engines.items())
            out.append(finding("hazard.default_conflict", CONFIG, pointer(name), f"{name} absent: {readings}",
                               expected=engines))
    return out


def _aux_layer_ids(config, resolved, props):
    out = []
    verifier_layers = get(resolved, "speculators_config", "verifier", "num_hidden_layers")
    nullable = {name for name, prop in props.items() if {"type": "null"} in prop.get("anyOf", [])}
    for name in [name for name, prop in props.items() if prop.get("x-specfmt-aux-layer-ids")]:
        ids = resolved.get(name)
        if ids is None and name in nullable:
            fallback = ", ".join(props[name]["x-specfmt-fallback"])  # a nullable id list declares what null reads
            out.append(finding("hazard.aux_layer_ids_implicit", CONFIG, pointer(name),
                               f"{name} absent or null: engines fall back to [{fallback}] of the verifier "
                               "(vllm#50170: acceptance 1.2% instead of 58.9%)"))
            continue
        if not isinstance(ids, list) or not all(is_int(i) for i in ids):
            continue
        if any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
            out.append(finding("hazard.aux_layer_ids_order", CONFIG, pointer(name),
                               mismatch("aux layer ids not strictly increasing; vLLM sorts and deduplicates them",
                                        sorted(set(ids)), ids), expected=sorted(set(ids)),
                               found=ids))
        if is_int(verifier_layers):
            for i, layer in enumerate(ids):
                if layer > verifier_layers:
                    out.append(finding("config.aux_layer_range", CONFIG, pointer(name, i),
                                       mismatch("aux layer id past the verifier's last layer",
                                                f"<= {verifier_layers}", layer),
                                       expected=verifier_layers, found=layer))
    return out


def _exclusive(config, resolved, props):
    out = []
    for name, prop in props.items():
        other = prop.get("x-specfmt-excludes")
        if other and resolved.get(name) is True and resolved.get(other) is True:
            out.append(finding("config.exclusive", CONFIG, pointer(name),
                               mismatch(f"{name} and {other} exclude each other", "at most one true", [other, name])))
    return out


def _verifier_facts(config, resolved):
    """The verifier facts the algorithm's layout derives shapes from are required (CFG-8)."""
    model_type = resolved.get("speculators_model_type")
    verifier = get(resolved, "speculators_config", "verifier")
    if not isinstance(model_type, str) or model_type not in ALGORITHMS or not isinstance(verifier, dict):
        return []
    exprs = " ".join(symbol["expr"] for symbol in layout(model_type)["symbols"].values())
    needed = sorted(set(re.findall(r"speculators_config\.verifier\.([a-z_]+)", exprs)))
    return [finding("config.required", CONFIG, pointer("speculators_config", "verifier", key),
                    f"{key!r} is required: the {model_type} layout derives tensor shapes from it",
                    expected=key) for key in needed if key not in verifier]


def _verifier_binding(config, resolved):
    verifier = get(resolved, "speculators_config", "verifier")
    layer = resolved.get("transformer_layer_config")
    if not isinstance(verifier, dict) or not isinstance(layer, dict):
        return []
    model_type = resolved.get("speculators_model_type")
    pairs = [("vocab_size", "/transformer_layer_config/vocab_size", layer.get("vocab_size"))]
    target = resolved.get("target_hidden_size")
    if model_type == "mtp":
        pairs += [("hidden_size", "/transformer_layer_config/hidden_size", layer.get("hidden_size")),
                  ("num_hidden_layers", "/transformer_layer_config/num_hidden_layers", layer.get("num_hidden_layers"))]
    elif "target_hidden_size" in resolved:
        where = "/target_hidden_size" if target is not None else "/transformer_layer_config/hidden_size"
        pairs.append(("hidden_size", where, target if target is not None else layer.get("hidden_size")))
    out = []
    for key, where, draft_value in pairs:
        value = verifier.get(key)
        if is_int(value) and is_int(draft_value) and value != draft_value:
            out.append(finding("config.verifier_mismatch", CONFIG, where,
                               mismatch(f"disagrees with speculators_config.verifier.{key}", value, draft_value),
                               expected=value, found=draft_value))
    return out


def _consistency(config, resolved):
    out = []

    def add(ptr: str, subject: str, expected: Any, found: Any) -> None:
        out.append(finding("config.consistency", CONFIG, ptr, mismatch(subject, expected, found),
                           expected=expected, found=found))

    layer = resolved.get("transformer_layer_config")
    vocab = layer.get("vocab_size") if isinstance(layer, dict) else None
    if is_int(vocab):
        for key, bound in (("draft_vocab_size", vocab), ("mask_token_id", vocab - 1)):
            value = resolved.get(key)
            if is_int(value) and value > bound:
                add(pointer(key), f"{key} past the verifier vocabulary", f"<= {bound}", value)
    lo, hi = resolved.get("prompt_lookup_min"), resolved.get("prompt_lookup_max")
    if is_int(lo) and is_int(hi) and lo > hi:
        add("/prompt_lookup_max", "prompt_lookup_max below prompt_lookup_min", f">= {lo}", hi)
    top_k, n_predict = resolved.get("top_k_tokens_per_head"), resolved.get("n_predict")
    if isinstance(top_k, list) and is_int(n_predict) and len(top_k) != n_predict:
        add("/top_k_tokens_per_head", "one entry per head", n_predict, len(top_k))
    if (resolved.get("speculators_model_type") == "dspark" and resolved.get("enable_confidence_head") is True
            and resolved.get("confidence_head_with_markov") is True and is_int(resolved.get("markov_rank"))
            and resolved["markov_rank"] == 0):
        add("/confidence_head_with_markov", "confidence_head_with_markov needs markov_rank > 0", False, True)
    return out
