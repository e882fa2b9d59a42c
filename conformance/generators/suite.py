"""The suite on disk: which generators write which files, and the manifest that lists them.

SCHEMA_FILES, CHECKPOINT_CASES and NUMERICS_CASES are the explicit lists of generators; nothing
registers itself. Numerics cases read the shared fixtures (num_fixtures), which are written first.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from conformance.generators import (
    ckpt_bytes,
    ckpt_clean,
    ckpt_edges,
    ckpt_expr,
    ckpt_layout,
    ckpt_rules,
    ckpt_shards,
    ckpt_values,
    mutants,
    num_accept,
    num_fixtures,
    num_flags,
    num_head32,
    num_rules,
    num_trees,
    num_verify,
    numerics,
    rules_more,
    rules_vrf,
    schema_algorithms,
    schema_level,
    schema_rules,
)
from conformance.generators.ckpt import write_case
from conformance.generators.common import CHECKPOINT_DIR, SCHEMA_DIR, manifest_algorithm, write_json
from specfmt.schemas import VERSION

SCHEMA_FILES = {
    "variants.json": [schema_level.variants],
    "required.json": [schema_level.required],
    "keywords.json": [schema_level.keywords],
    "rules.json": [schema_rules.listed_rules, schema_rules.verifier_facts, schema_rules.verifier_path,
                   schema_rules.exclusive, schema_rules.aux_layer_ids],
    "hazards.json": [schema_rules.default_conflicts, schema_rules.removed_proposal_types,
                     schema_rules.layer_model_type],
    "corpus.json": [schema_level.corpus],
    "algorithms.json": [schema_algorithms.algorithm_rules, schema_algorithms.format_version],
}

CHECKPOINT_CASES = [
    ckpt_clean.clean_variants,
    ckpt_clean.clean_sharded,
    ckpt_clean.corpus,
    ckpt_bytes.header_cases,
    ckpt_bytes.index_cases,
    ckpt_shards.shard_cases,
    ckpt_bytes.weights_cases,
    ckpt_bytes.config_file_cases,
    ckpt_bytes.io_cases,
    ckpt_layout.layout_cases,
    ckpt_expr.expr_cases,
    ckpt_rules.rule_cases,
    ckpt_values.value_cases,
    ckpt_edges.edge_cases,
    mutants.checkpoint_cases,  # what mutants of the reference survived (make mutation): the validator
]

NUMERICS_CASES = [
    numerics.model_cases,  # verifier_forward, propose, draft_forward, generate: (suite) -> cases
    num_head32.cases,  # propose and generate with head_dim 32 fixtures, which engines' CPU kernels run
    num_flags.cases,  # flag combinations, grouped-query attention, qwen2 and tied embeddings: verifier_forward, propose
    num_accept.cases,  # generate with drafts built to agree with a bigram verifier: acceptance counters that can fail
    num_rules.cases,  # the verifier rules (VFR-*), DFlash on the verifier's tensors, and refusals (PROTOCOL.md 3.4)
    rules_more.cases,  # the n-gram page's worked examples (ALG-NGRAM-3), and the refusals of issue 23's coverage map
    lambda suite: num_verify.verify_cases(),  # verify_greedy, verify_sampling: no checkpoint
    rules_vrf.cases,  # VRF-1 and VRF-4 boundaries that mutants.py's verification cases leave open
    lambda suite: mutants.numerics_cases(),  # what mutants of the reference survived (make mutation): verification
    num_trees.cases,  # tree proposals and tree verification (spec/trees.md): mask, propose, verify, generate, refusals
]

DATA_DIRS = ("cases", "fixtures")  # every file under these is listed in the manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_files(suite: Path) -> list[Path]:
    """Every file the manifest must list, relative to the suite root."""
    return sorted(p.relative_to(suite) for top in DATA_DIRS if (suite / top).is_dir()
                  for p in (suite / top).rglob("*") if p.is_file())


def write_schema_level(suite: Path) -> list[dict]:
    entries = []
    for name, generators in SCHEMA_FILES.items():
        groups = [g for generate in generators for g in generate()]
        rel = SCHEMA_DIR / name
        write_json(suite / rel, groups)
        entries += [{"id": f"{g['id']}/{t['id']}", "level": "schema", "path": rel.as_posix(), "since": g["since"],
                     **manifest_algorithm(t["data"])} for g in groups for t in g["tests"]]
    return entries


def write_suite(suite: Path, suite_version: str) -> dict:
    """Write every level, the shared fixtures and manifest.json under `suite` (old ones removed first)."""
    for level_dir in (SCHEMA_DIR, CHECKPOINT_DIR, numerics.NUMERICS_DIR, num_fixtures.FIXTURES):
        if (suite / level_dir).exists():
            shutil.rmtree(suite / level_dir)
    cases = write_schema_level(suite)
    cases += [write_case(case, suite) for generate in CHECKPOINT_CASES for case in generate()]
    num_fixtures.write_fixtures(suite)
    num_head32.write_fixtures(suite)
    num_flags.write_fixtures(suite)
    num_accept.write_fixtures(suite)
    num_rules.write_fixtures(suite)
    rules_more.write_fixtures(suite)
    cases += [numerics.write_numerics_case(case, suite) for generate in NUMERICS_CASES for case in generate(suite)]
    manifest = {"suite_version": suite_version, "format_version": VERSION, "cases": cases,
                "files": {p.as_posix(): sha256(suite / p) for p in data_files(suite)}}
    write_json(suite / "manifest.json", manifest)
    return manifest
