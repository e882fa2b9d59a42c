"""specfmt upgrade: compat checkpoints made strict, every default explicit, or refused with the flag to supply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builders import CORPUS_VERIFIER_NAME, VERIFIER_CONFIG, config_of, corpus_verifier, write_variant
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
    before, _, _ = read_header(str(source / "model.safetensors"), "model.safetensors")
    after, _, _ = read_header(str(out / "model.safetensors"), "model.safetensors")
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


def source_without(tmp_path: Path, variant: str, *facts: str, **changes) -> Path:
    """A builder variant whose verifier block lacks `facts`, with top-level `changes`."""
    source = write_variant(variant, tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    for fact in facts:
        del config["speculators_config"]["verifier"][fact]
    config.update(changes)
    (source / "config.json").write_text(json.dumps(config))
    return source


def test_a_verifier_that_contradicts_the_checkpoint_is_refused_listing_every_conflicting_fact(tmp_path):
    from specfmt.convert.common import VerifierFacts

    source = source_without(tmp_path, "eagle3", "num_hidden_layers")  # hidden_size 32 stays, the layers come
    other = dict(VERIFIER_CONFIG, hidden_size=64, num_hidden_layers=12)
    with pytest.raises(Refused) as refused:
        upgrade(source, tmp_path / "out", {}, VerifierFacts(other, "org/other"))
    (refusal,) = refused.value.refusals
    assert (refusal.pointer, refusal.code) == ("/speculators_config/verifier", "convert.verifier_mismatch")
    assert 'hidden_size is 32 in the checkpoint, 64 in --verifier' in refusal.message
    assert 'name_or_path is "local/verifier" in the checkpoint, "org/other" from --verifier-name' in refusal.message
    assert refusal.flag.startswith("--verifier PATH") and not (tmp_path / "out").exists()


def test_target_vocab_size_is_read_as_the_verifier_vocabulary(tmp_path):
    source = source_without(tmp_path, "eagle3", "vocab_size", target_vocab_size=128)
    out, decisions = upgrade(source, tmp_path / "out", {})
    assert json.loads((out / "config.json").read_text())["speculators_config"]["verifier"]["vocab_size"] == 128
    assert ("translated", "speculators_config.verifier.vocab_size") in {(d.kind, d.subject) for d in decisions}


def test_torch_dtype_is_read_as_dtype_as_convert_reads_it(tmp_path):
    config = config_of("eagle3")
    source = source_without(tmp_path, "eagle3", torch_dtype=config["dtype"])
    config = json.loads((source / "config.json").read_text())
    del config["dtype"]
    (source / "config.json").write_text(json.dumps(config))
    out, decisions = upgrade(source, tmp_path / "out", {})
    assert ("translated", "dtype") in {(d.kind, d.subject) for d in decisions}
    assert json.loads((out / "config.json").read_text())["dtype"] == config["torch_dtype"]


def test_verifier_name_alone_names_a_checkpoint_whose_verifier_is_a_local_path(tmp_path, capsys):
    from specfmt.cli import main

    source = write_variant("eagle3", tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    config["speculators_config"]["verifier"]["name_or_path"] = "/data/models/llama"
    (source / "config.json").write_text(json.dumps(config))
    assert main(["upgrade", str(source), "--out", str(tmp_path / "out")]) == 1
    assert "supply --verifier-name ORG/NAME [" in capsys.readouterr().err  # the facts are there: only the name
    assert main(["upgrade", str(source), "--out", str(tmp_path / "out"), "--verifier-name", "org/llama"]) == 0
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert written["speculators_config"]["verifier"]["name_or_path"] == "org/llama"


def test_a_nested_text_config_verifier_keeps_its_top_level_architectures(tmp_path):
    from specfmt.convert.common import verifier_facts

    mistral3 = {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
                "text_config": {"model_type": "mistral", "hidden_size": 32, "num_hidden_layers": 6, "vocab_size": 128},
                "vision_config": {"hidden_size": 16}}
    (tmp_path / "config.json").write_text(json.dumps(mistral3))
    facts = verifier_facts(str(tmp_path), "org/mistral3")
    assert facts.config["architectures"] == ["Mistral3ForConditionalGeneration"]
    assert (facts.hidden_size, facts.num_layers, facts.vocab_size) == (32, 6, 128)


def test_a_checkpoint_whose_layout_needs_an_absent_verifier_fact_upgrades_with_verifier_or_names_it(tmp_path):
    from specfmt.convert.common import VerifierFacts

    source = source_without(tmp_path, "mlp_speculator", "hidden_size")  # compat requires it for the shapes
    with pytest.raises(Refused) as refused:
        upgrade(source, tmp_path / "out", {})
    assert [r.flag for r in refused.value.refusals] == ["--verifier PATH (its config.json)"]
    with pytest.raises(Refused) as refused:  # a verifier of another width: named with the shapes it contradicts
        upgrade(source, tmp_path / "out", {}, VerifierFacts(dict(VERIFIER_CONFIG, hidden_size=64), None))
    (refusal,) = refused.value.refusals
    assert refusal.code == "convert.verifier_mismatch" and "where --verifier's hidden_size makes it" in refusal.message
    out, _ = upgrade(source, tmp_path / "out", {}, VerifierFacts(VERIFIER_CONFIG, None))
    assert validate(out, "strict").findings == []


@pytest.mark.parametrize(("pair", "said"), [
    ("dtype.x=1", 'dtype is "float32", not an object'),
    ("speculators_config.proposal_methods.5.x=1", "speculators_config.proposal_methods is a list of 1, so '5'"),
    ("speculators_config.proposal_methods.first=1", "speculators_config.proposal_methods is a list of 1, so 'first'")])
def test_a_set_path_through_a_non_object_is_one_line_naming_it(pair, said, tmp_path):
    source = write_variant("eagle3", tmp_path / "source")
    for command in (["upgrade", str(source)], ["convert", str(source), "--from", "speculators", "--verifier",
                                               str(tmp_path / "verifier.json")]):
        (tmp_path / "verifier.json").write_text(json.dumps(VERIFIER_CONFIG))
        run = subprocess.run([sys.executable, "-m", "specfmt", *command, "--out", str(tmp_path / "out"), "--set", pair],
                             capture_output=True, text=True)
        assert run.returncode == 2 and "Traceback" not in run.stderr and said in run.stderr
        assert len(run.stderr.splitlines()) == 1


def test_a_speculators_config_that_is_no_object_is_refused_in_one_line(tmp_path, capsys):
    from specfmt.cli import main

    source = write_variant("eagle3", tmp_path / "source")
    config = dict(json.loads((source / "config.json").read_text()), speculators_config="x")
    (source / "config.json").write_text(json.dumps(config))
    (tmp_path / "verifier.json").write_text(json.dumps(VERIFIER_CONFIG))
    assert main(["convert", str(source), "--from", "speculators", "--verifier", str(tmp_path / "verifier.json"),
                 "--verifier-name", "local/verifier", "--out", str(tmp_path / "out")]) == 1
    assert "#/speculators_config: strict: wrong type" in capsys.readouterr().err


def test_the_upgraded_directory_gets_the_usual_mode_and_never_replaces_its_source(tmp_path):
    import os

    from specfmt.publish import UnsafeOut

    source = write_variant("eagle3", tmp_path / "source")
    with pytest.raises(UnsafeOut):
        upgrade(source, source, {}, overwrite=True)
    out, _ = upgrade(source, tmp_path / "out", {})
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # mkdtemp's 0700 before
    assert validate(source, "strict").ok
