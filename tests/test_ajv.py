"""Second-language check of the config schemas: Ajv (Node, strict mode) must agree with jsonschema.

The document set is the compatibility corpus, every strict builder variant, and mutations of all of
them generated below. One Node process (tests/node/ajv_validate.cjs) judges the whole set under both
profiles; its verdicts must equal those of specfmt.schemas.config_validator.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import CORPUS, VARIANTS
from specfmt.schemas import config_validator

ROOT = Path(__file__).resolve().parent.parent
AJV_SCRIPT = Path(__file__).resolve().parent / "node" / "ajv_validate.cjs"
PROFILES = ("compat", "strict")
NODE = shutil.which("node")
HAVE_AJV = (ROOT / "node_modules" / "ajv" / "package.json").is_file()

needs_ajv = pytest.mark.skipif(
    NODE is None or not HAVE_AJV,
    reason="node is not on PATH" if NODE is None
    else "node_modules/ajv is absent (run `npm ci` or `make test`)",
)

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


@pytest.fixture(scope="module")
def verdicts() -> list[tuple[str, dict, dict[str, bool], dict[str, bool]]]:
    """(description, document, jsonschema verdicts, Ajv verdicts) for every document of the set."""
    docs = document_set()
    validators = {profile: config_validator(profile) for profile in PROFILES}
    python = [{profile: validators[profile].is_valid(doc) for profile in PROFILES} for _, doc in docs]
    run = subprocess.run([NODE, str(AJV_SCRIPT)], input=json.dumps([doc for _, doc in docs]),
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    if run.returncode != 0:
        pytest.fail(f"{AJV_SCRIPT.name} exited {run.returncode}:\n{run.stderr}")
    ajv = json.loads(run.stdout)
    assert len(ajv) == len(docs), f"Ajv returned {len(ajv)} verdicts for {len(docs)} documents"
    return [(label, doc, py, {p: aj[p] for p in PROFILES})
            for (label, doc), py, aj in zip(docs, python, ajv, strict=True)]


@pytest.mark.node
@needs_ajv
def test_ajv_and_jsonschema_agree_on_every_config_under_both_profiles(verdicts):
    differing = [(label, doc, py, aj) for label, doc, py, aj in verdicts if py != aj]
    shown = "\n\n".join(
        f"{label}\n  jsonschema: {py}\n  ajv:        {aj}\n  document: {json.dumps(doc, sort_keys=True)}"
        for label, doc, py, aj in differing[:5])
    assert not differing, (f"{len(differing)} of {len(verdicts)} documents judged differently; "
                           f"first ones:\n\n{shown}")


@pytest.mark.node
@needs_ajv
def test_the_document_set_has_accepted_and_rejected_configs_under_each_profile(verdicts):
    for profile in PROFILES:
        outcomes = {py[profile] for _, _, py, _ in verdicts}
        assert outcomes == {True, False}, f"{profile}: every document got {outcomes}"


@pytest.mark.node
@needs_ajv
def test_the_document_set_holds_the_corpus_the_variants_and_their_mutations(verdicts):
    labels = [label for label, *_ in verdicts]
    bases = base_documents()
    assert sum(label.startswith("corpus ") for label, _ in bases) == 17
    assert sum(label.startswith("variant ") for label, _ in bases) == len(VARIANTS)
    assert {label for label, _ in bases} <= set(labels)
    assert len(labels) > 10 * len(bases)
