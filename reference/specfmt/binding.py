"""The binding of a draft to the verifier it runs beside: every verifier fact the draft's forward reads, as the
draft states it, against the verifier's own config.json. The runtime checks it before it moves a tensor or runs a
forward, so that a draft made for another verifier is a finding that names both sides, not a shape error.

The draft states a fact in its binding block (speculators_config.verifier, CFG-8) and, for the facts its tensors
are shaped by, in a layout symbol (H_t of eagle3 is the verifier's hidden size, V its vocabulary). Both are
compared; aux layer ids (the config fields the schema marks x-specfmt-aux-layer-ids) must name verifier layers.
Mismatches reuse the validator's codes: config.verifier_mismatch and config.aux_layer_range.

Spec: spec/config.md#CFG-8, spec/config.md#CFG-9
"""

from __future__ import annotations

from specfmt import expr
from specfmt.findings import Finding, finding, pointer, under
from specfmt.layout import expand
from specfmt.schemas import layout, load

FACTS = ("hidden_size", "num_hidden_layers", "vocab_size")  # what speculators_config.verifier may state

# Per algorithm, the layout expression (over its symbols and config) that its forward requires to equal each
# verifier fact: the width of the verifier states or tensors it reads, the vocabulary its ids index.
READS: dict[str, dict[str, str]] = {
    "eagle3": {"hidden_size": "H_t", "vocab_size": "V"},
    "peagle": {"hidden_size": "H_t", "vocab_size": "V"},
    "dflash": {"hidden_size": "H_t", "vocab_size": "V"},
    "dspark": {"hidden_size": "H_t", "vocab_size": "V"},
    "eagle": {"hidden_size": "H", "vocab_size": "V"},
    "mtp": {"hidden_size": "H", "vocab_size": "V", "num_hidden_layers": "transformer_layer_config.num_hidden_layers"},
    "medusa": {"hidden_size": "H", "vocab_size": "V"},
    "mlp_speculator": {"hidden_size": "H", "vocab_size": "V"},
    "independent": {"vocab_size": "V"},
    "ngram": {},
}


def _aux_id_fields(node) -> set[str]:
    """The config fields that the schema marks as verifier aux layer ids, wherever they are declared."""
    found = set()
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict) and prop.get("x-specfmt-aux-layer-ids"):
                found.add(name)
        for value in node.values():
            found |= _aux_id_fields(value)
    elif isinstance(node, list):
        for value in node:
            found |= _aux_id_fields(value)
    return found


AUX_ID_FIELDS = tuple(sorted(_aux_id_fields(load("config.schema.json"))))


def stated(resolved: dict, draft_file: str) -> dict[str, list[tuple[object, str]]]:
    """Each verifier fact as the draft states it, (value, `name value (where)`): from the binding block, then
    from the layout expression its forward reads it through."""
    algorithm = resolved["speculators_model_type"]
    block = resolved.get("speculators_config", {}).get("verifier") or {}
    symbols, declared = expand(algorithm, resolved)[0], layout(algorithm)["symbols"]
    out: dict[str, list[tuple[object, str]]] = {fact: [] for fact in FACTS}
    for fact in FACTS:
        if isinstance(block.get(fact), int):
            where = f"{draft_file}#{pointer('speculators_config', 'verifier', fact)}"
            out[fact].append((block[fact], f"verifier.{fact} {block[fact]} ({where})"))
    for fact, text in READS[algorithm].items():
        value = expr.evaluate(text, symbols, resolved)
        if isinstance(value, int):
            where = f"= {declared[text]['expr']} of {draft_file}" if text in declared else draft_file
            out[fact].append((value, f"{text} {value} ({where})"))
    return out


def check(resolved: dict, verifier_config: dict, draft_file: str, verifier_file: str) -> list[Finding]:
    """Every fact the draft states that the verifier's config.json contradicts, and every aux layer id past the
    verifier's last layer; [] when the draft runs with this verifier. Each message names both sides."""
    out = []
    for fact, sources in stated(resolved, draft_file).items():
        actual = verifier_config.get(fact)
        wrong = [(value, said) for value, said in sources if value != actual]
        if wrong and isinstance(actual, int):
            value, said = wrong[0]
            out.append(finding("config.verifier_mismatch", draft_file, pointer("speculators_config", "verifier", fact),
                               f"draft's {said}, verifier's {fact} {actual} ({verifier_file})",
                               expected=actual, found=value))
    layers = verifier_config.get("num_hidden_layers")
    for name in AUX_ID_FIELDS:
        ids = resolved.get(name)
        for i, layer in enumerate(ids if isinstance(ids, list) and isinstance(layers, int) else []):
            if not 0 <= layer <= layers:
                out.append(finding("config.aux_layer_range", draft_file, pointer(name, i),
                                   f"draft's {name}[{i}] {layer} ({draft_file}#{pointer(name, i)}), verifier's "
                                   f"num_hidden_layers {layers} ({verifier_file}); expected <= {layers}",
                                   expected=layers, found=layer))
    return under(out, "compat")  # its own report: hazards would be warnings, as under validate's default
