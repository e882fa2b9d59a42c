"""specfmt upgrade: compat checkpoints made strict, every default explicit, or refused with the flag to supply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builders import CORPUS_VERIFIER_NAME, config_of, corpus_verifier, write_variant
from conformance.generators.variants import corpus_checkpoint, corpus_names
from specfmt import validate
from specfmt.convert.common import Refused
from specfmt.convert.upgrade import upgrade
from specfmt.safetensors_header import read_header

UNDECIDABLE = {"mtp": {"verifier_hidden_state": "post_norm"}}  # fields no corpus checkpoint of the type states


@pytest.mark.parametrize("name", corpus_names())
def test_every_corpus_checkpoint_upgrades_to_strict_with_its_verifier_or_is_refused_naming_the_flag(name, tmp_path):
    source = corpus_checkpoint(name, tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    given = UNDECIDABLE.get(config["speculators_model_type"], {})
    if given:
        with pytest.raises(Refused) as refused:
            upgrade(source, tmp_path / "out", {}, corpus_verifier(config))
        assert [(r.pointer, r.code) for r in refused.value.refusals] == [
            (f"/{field}", "convert.undecidable") for field in given]
    out, decisions = upgrade(source, tmp_path / "out", given, corpus_verifier(config))
    assert validate(out, "strict").findings == []
    written = json.loads((out / "config.json").read_text())
    assert written["specfmt_provenance"]["conversion"]["decisions"] == [d.to_json() for d in decisions]
    named = config["speculators_config"]["verifier"].get("name_or_path")
    kept = named if isinstance(named, str) and "/" in named else CORPUS_VERIFIER_NAME  # a source's hub id stays
    assert written["speculators_config"]["verifier"]["name_or_path"] == kept


def test_a_corpus_checkpoint_without_its_verifier_facts_is_refused_naming_only_the_verifier_flag_it_needs(tmp_path):
    source = corpus_checkpoint("v0.9.0--dflash_qwen3_fullvocab", tmp_path / "source")  # it names a hub id
    with pytest.raises(Refused) as refused:
        upgrade(source, tmp_path / "out", {})
    assert [r.flag for r in refused.value.refusals] == ["--verifier PATH (its config.json)"]
    assert not (tmp_path / "out").exists()


def test_a_field_engines_read_differently_is_refused_until_set(tmp_path):
    config = config_of("eagle3")
    source = write_variant("eagle3", tmp_path / "source")
    del config["norm_before_residual"]
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(Refused) as refused:
        upgrade(source, tmp_path / "out", {})
    (refusal,) = refused.value.refusals
    assert (refusal.pointer, refusal.flag) == ("/norm_before_residual", "--set norm_before_residual=false|true")
    out, decisions = upgrade(source, tmp_path / "out", {"norm_before_residual": False})
    assert json.loads((out / "config.json").read_text())["norm_before_residual"] is False
    assert ("given", "norm_before_residual") in {(d.kind, d.subject) for d in decisions}


def test_the_upgrade_changes_config_json_only_and_drops_the_stray_verifier_tensor(tmp_path):
    source = corpus_checkpoint("head--mtp_qwen3", tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    out, decisions = upgrade(source, tmp_path / "out", UNDECIDABLE["mtp"], corpus_verifier(config))
    before, _, _ = read_header(str(source / "model.safetensors"), "model.safetensors", "compat")
    after, _, _ = read_header(str(out / "model.safetensors"), "model.safetensors", "compat")
    assert {t.name for t in before} - {t.name for t in after} == {"verifier_lm_head.weight"}
    assert {(t.name, t.dtype, t.shape) for t in after} <= {(t.name, t.dtype, t.shape) for t in before}
    assert ("dropped", "verifier_lm_head.weight") in {(d.kind, d.subject) for d in decisions}


def test_specfmt_upgrade_prints_its_decisions_and_refusals_with_exit_codes(tmp_path):
    source = corpus_checkpoint("v0.9.0--dflash_qwen3_fullvocab", tmp_path / "source")
    refused = subprocess.run([sys.executable, "-m", "specfmt", "upgrade", str(source), "--out", str(tmp_path / "o")],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "supply --verifier PATH" in refused.stderr
    verifier = tmp_path / "verifier.json"
    config = json.loads((source / "config.json").read_text())
    verifier.write_text(json.dumps(corpus_verifier(config).config))
    done = subprocess.run([sys.executable, "-m", "specfmt", "upgrade", str(source), "--out", str(tmp_path / "o"),
                           "--verifier", str(verifier)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "given: speculators_config.verifier.hidden_size" in done.stdout and "wrote" in done.stdout
    assert validate(Path(tmp_path / "o"), "strict").ok


def test_a_set_path_through_a_list_index_reaches_the_list_item():
    from specfmt.convert.common import apply_given

    config = {"speculators_config": {"proposal_methods": [{"proposal_type": "sampling"}]}}
    decisions = []
    apply_given(config, {"speculators_config.proposal_methods.0.proposal_type": "greedy"}, decisions)
    assert config["speculators_config"]["proposal_methods"] == [{"proposal_type": "greedy"}]
    assert decisions[0].kind == "given"
