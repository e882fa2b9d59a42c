"""The shared document set of the differential schema tests (Ajv, pydantic): the compatibility
corpus, every strict builder variant, and mutations of each generated here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

from builders import CORPUS, VARIANTS

PROPOSAL_TYPES = ("greedy", "sampling", "static_tree", "dynamic_tree", "bogus")
AUX_IDS_VALUES = ([-1], None, "x")
# One value of each JSON type; a scalar is replaced by every one of a different type.
TYPE_SAMPLES = (True, 7, 2.5, "x", None, [], {})


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def wrong_type_values(value) -> list:
    """Values whose JSON type the original's type does not admit (an integer is also a number)."""
    own = json_type(value)
    admitted = {own, "integer"} if own == "number" else {own}
    return [sample for sample in TYPE_SAMPLES if json_type(sample) not in admitted]


def mutations(doc: dict) -> Iterator[tuple[str, dict]]:
    """(description, mutated copy) for every generated mutation of one config."""

    def changed(edit) -> dict:
        new = copy.deepcopy(doc)
        edit(new)
        return new

    for key in doc:
        yield f"delete {key}", changed(lambda d, k=key: d.pop(k))
    for key, value in doc.items():
        if isinstance(value, (dict, list)):
            continue
        for wrong in wrong_type_values(value):
            yield f"set {key} = {wrong!r}", changed(lambda d, k=key, w=wrong: d.__setitem__(k, w))
    yield ("unknown speculators_model_type",
           changed(lambda d: d.__setitem__("speculators_model_type", "bogus")))
    # ECMA-262 `$` does not match before a final newline; Python's `$` does (schemas._ecma_regex).
    for version in ("1.0", "1.0\n", "1.12", "2.0"):
        yield (f"speculators_format_version = {version!r}",
               changed(lambda d, v=version: d.__setitem__("speculators_format_version", v)))

    envelope = doc.get("speculators_config")
    if isinstance(envelope, dict):
        for key in envelope:
            yield f"delete speculators_config.{key}", changed(lambda d, k=key: d["speculators_config"].pop(k))
        if isinstance(envelope.get("verifier"), dict):
            for key in envelope["verifier"]:
                yield (f"delete speculators_config.verifier.{key}",
                       changed(lambda d, k=key: d["speculators_config"]["verifier"].pop(k)))
        methods = envelope.get("proposal_methods")
        if isinstance(methods, list) and methods and isinstance(methods[0], dict):
            for proposal_type in PROPOSAL_TYPES:
                yield (f"proposal_methods[0].proposal_type = {proposal_type}", changed(
                    lambda d, t=proposal_type: d["speculators_config"]["proposal_methods"][0].__setitem__(
                        "proposal_type", t)))

    if isinstance(doc.get("transformer_layer_config"), dict):
        for key in doc["transformer_layer_config"]:
            yield (f"delete transformer_layer_config.{key}",
                   changed(lambda d, k=key: d["transformer_layer_config"].pop(k)))

    # JSON Schema counts 5.0 as an integer and never counts true as one.
    if isinstance(doc.get("speculators_config"), dict):
        for tokens in (5.0, True, 0, 2.5):
            yield (f"speculative_tokens = {tokens!r}", changed(
                lambda d, t=tokens: d["speculators_config"]["proposal_methods"][0].__setitem__(
                    "speculative_tokens", t)))
    for ids in AUX_IDS_VALUES:
        yield (f"set eagle_aux_hidden_state_layer_ids = {ids!r}",
               changed(lambda d, v=ids: d.__setitem__("eagle_aux_hidden_state_layer_ids", v)))


def base_documents() -> list[tuple[str, dict]]:
    docs = [(f"corpus {path.parent.name}", json.loads(path.read_text(encoding="utf-8")))
            for path in sorted(CORPUS.glob("*/config.json"))]
    docs += [(f"variant {name}", copy.deepcopy(cfg)) for name, cfg in sorted(VARIANTS.items())]
    return docs


def document_set() -> list[tuple[str, dict]]:
    """Base documents and their mutations, without duplicates (the first description is kept)."""
    seen: set[str] = set()
    out = []
    for label, doc in base_documents():
        for description, candidate in [(label, doc)] + [(f"{label}: {m}", d) for m, d in mutations(doc)]:
            canonical = json.dumps(candidate, sort_keys=True)
            if canonical not in seen:
                seen.add(canonical)
                out.append((description, candidate))
    return out
