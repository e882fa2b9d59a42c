"""Second-language check of the config schemas: Ajv (Node, strict mode) must agree with jsonschema.

The document set is the compatibility corpus, every strict builder variant, and mutations of all of
them generated below. One Node process (tests/node/ajv_validate.cjs) judges the whole set under both
profiles; its verdicts must equal those of specfmt.schemas.config_validator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from builders import VARIANTS
from documents import base_documents, document_set
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
    assert sum(label.startswith("corpus ") for label, _ in bases) == 20
    assert sum(label.startswith("variant ") for label, _ in bases) == len(VARIANTS)
    assert {label for label, _ in bases} <= set(labels)
    assert len(labels) > 10 * len(bases)
