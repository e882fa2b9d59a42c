"""The compatibility corpus: 20 checkpoints written by the real speculators library.

Each fixture is the checkpoint's config.json plus a header-only safetensors file built from its
tensor manifest, so these tests need no network and no speculators install.
"""

import json

import pytest

from builders import CORPUS, corpus_checkpoint, corpus_names
from specfmt import validate

STRAY = ("hazard.stray_verifier_tensor", "/verifier_lm_head.weight")
MTP_STATE = ("hazard.default_conflict", "/verifier_hidden_state")  # no speculators mtp checkpoint states it

# What each checkpoint's content deserves under compat: warnings only.
COMPAT_EXPECTED = {name: set() for name in corpus_names()}
COMPAT_EXPECTED["head--mtp_qwen3"] = {STRAY, MTP_STATE}
COMPAT_EXPECTED["head-converted--mtp_converted"] = {STRAY, MTP_STATE}

# Under strict every speculators checkpoint lacks the format version and the verifier facts, and
# carries auto_map; some lack more.
STRICT_COMMON = {
    ("config.forbidden", "/auto_map"),
    ("config.required", "/speculators_format_version"),
    ("config.required", "/speculators_config/verifier/hidden_size"),
    ("config.required", "/speculators_config/verifier/num_hidden_layers"),
    ("config.required", "/speculators_config/verifier/vocab_size"),
}
STRICT_EXTRA = {name: set() for name in corpus_names()}
STRICT_EXTRA["head--mtp_qwen3"] = {STRAY, ("config.required", "/verifier_hidden_state")}
STRICT_EXTRA["head-converted--mtp_converted"] = {STRAY, ("config.required", "/verifier_hidden_state")}
# The library writes a null verifier when it trains without a hub id; strict names a hub id (CFG-8).
NULL_VERIFIER = ("config.type", "/speculators_config/verifier/name_or_path")
for name in corpus_names():
    verifier = json.loads((CORPUS / name / "config.json").read_text())["speculators_config"]["verifier"]
    if verifier["name_or_path"] is None:
        STRICT_EXTRA[name].add(NULL_VERIFIER)
STRICT_EXTRA["v0.2.0--eagle3_legacy_targethidden48"] |= {
    ("config.required", "/norm_before_fc"),
    ("config.required", "/fc_norm"),
    ("config.required", "/norm_output"),
}


def test_the_corpus_has_twenty_checkpoints():
    assert len(corpus_names()) == 20


def test_most_of_the_corpus_names_a_null_verifier():
    assert sum(NULL_VERIFIER in STRICT_EXTRA[name] for name in corpus_names()) == 14


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_checkpoint_validates_under_compat_with_exactly_its_hazards(name, tmp_path):
    report = validate(corpus_checkpoint(name, tmp_path / name), "compat")
    assert report.ok, [str(f) for f in report.errors]
    assert report.codes() == COMPAT_EXPECTED[name]
    assert all(f.severity == "warning" for f in report.findings)


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_checkpoint_fails_strict_with_exactly_the_expected_findings(name, tmp_path):
    report = validate(corpus_checkpoint(name, tmp_path / name), "strict")
    assert not report.ok
    assert report.codes() == STRICT_COMMON | STRICT_EXTRA[name]
    assert all(f.severity == "error" for f in report.findings)


def test_converted_eagle3_with_a_dropped_layer_reports_missing_layers_once(tmp_path):
    # The EAGLE-3 converter keeps only layers.0 but copies num_hidden_layers from its source.
    path = corpus_checkpoint("head-converted--eagle3_converted", tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    config["transformer_layer_config"]["num_hidden_layers"] = 2
    (path / "config.json").write_text(json.dumps(config))
    report = validate(path, "compat")
    assert report.ok
    assert report.codes() == {("hazard.layers_missing", "/transformer_layer_config/num_hidden_layers")}
    assert report.findings[0].found == [1]
    strict = validate(path, "strict")
    assert ("hazard.layers_missing", "/transformer_layer_config/num_hidden_layers") in strict.codes()


def test_absent_norm_before_residual_warns_with_both_engine_readings(tmp_path):
    path = corpus_checkpoint("head--eagle3_llama_2l_draftvocab", tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    del config["norm_before_residual"]
    (path / "config.json").write_text(json.dumps(config))
    report = validate(path, "compat")
    assert report.codes() == {("hazard.default_conflict", "/norm_before_residual")}
    message = report.findings[0].message
    assert "speculators reads false" in message and "vllm reads true" in message


def test_implicit_aux_layer_ids_warn_under_compat(tmp_path):
    path = corpus_checkpoint("head--eagle3_llama_2l_draftvocab", tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    config["eagle_aux_hidden_state_layer_ids"] = None
    (path / "config.json").write_text(json.dumps(config))
    assert validate(path, "compat").codes() == {("hazard.aux_layer_ids_implicit", "/eagle_aux_hidden_state_layer_ids")}


def test_validating_a_config_alone_reports_its_config_findings_only(tmp_path):
    from specfmt import validate_config

    config = json.loads((corpus_checkpoint("head--mtp_qwen3", tmp_path / "c") / "config.json").read_text())
    assert validate_config(config, "compat").codes() == {MTP_STATE}  # the stray tensor needs the weights to be seen
    assert validate_config(config, "strict").codes() == STRICT_COMMON | {NULL_VERIFIER,
                                                                         ("config.required", "/verifier_hidden_state")}
