"""specfmt convert --from speculators: every speculators-library checkpoint, v0.1 on, becomes strict (or is refused
naming the flag that supplies what it lacks), computing what the source computes under compat; the flattened
independent form of v0.1-v0.4 becomes a v1 independent checkpoint and the config-only mlp type is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from builders import (
    CORPUS_VERIFIER_NAME,
    VERIFIER_CONFIG,
    config_of,
    corpus_checkpoint,
    corpus_names,
    corpus_verifier,
    write_variant,
    write_verifier,
)
from specfmt import validate
from specfmt.convert import converter, write
from specfmt.convert.common import Refused, VerifierFacts, parse_sets, read_source
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.verifier import Verifier

TOLERANCE = 1e-12  # the same math on the same tensors, in float64



def converted(source: Path, facts: VerifierFacts, out: Path, given: dict | None = None) -> Path:
    conversion = converter("speculators")(read_source(source), facts, given or {})
    return write(conversion, out, "specfmt convert", "speculators", str(source), argv=[])


@pytest.mark.parametrize("name", corpus_names())
def test_every_corpus_checkpoint_converts_to_strict_or_is_refused_naming_its_flag(name, tmp_path):
    source = corpus_checkpoint(name, tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    try:
        out = converted(source, corpus_verifier(config), tmp_path / "out")
    except Refused as refused:  # what engines read differently and the source leaves open
        assert [(r.pointer, r.flag) for r in refused.refusals] == [
            ("/verifier_hidden_state", "--set verifier_hidden_state=pre_norm|post_norm")], refused
        assert config["speculators_model_type"] == "mtp"
        return
    assert validate(out, "strict").findings == []
    before, after = read_source(source).tensors, read_source(out).tensors
    assert set(after) == set(before) - {"verifier_lm_head.weight"}  # the MTP converter's NaN copy never survives
    assert all(torch.equal(after[k], before[k]) for k in after)


def logits_of(path: Path, verifier: Verifier, profile: str, k: int = 3) -> torch.Tensor:
    draft, _ = load_draft(path, verifier, profile)
    prompt = torch.tensor([3, 17, 42, 9, 77, 5, 64])
    verifier.truncate(0)
    out = verifier.forward(prompt, draft.aux_ids)
    recorder = RecordingPicker()
    draft.propose(Context(prompt.tolist() + [int(out.logits[-1].argmax())], out.aux, out.last, out.normed), k,
                  recorder)
    return torch.stack(recorder.logits).double()


@pytest.fixture(scope="module")
def verifier(tmp_path_factory) -> Verifier:
    return Verifier.from_pretrained(write_verifier(tmp_path_factory.mktemp("verifier") / "llama", scale=5.0),
                                    dtype=torch.float64)


def test_a_compat_eagle3_checkpoint_converts_and_proposes_what_it_proposed_under_compat(tmp_path, verifier):
    source = write_variant("eagle3", tmp_path / "source", std=0.2)
    config = json.loads((source / "config.json").read_text())
    config["speculators_config"]["verifier"] = {"name_or_path": "local/verifier", "architectures": []}  # as written
    config.update(auto_map={"": "config.Eagle3SpeculatorConfig"}, speculators_version="0.7.1")
    del config["speculators_format_version"], config["target_hidden_size"]
    (source / "config.json").write_text(json.dumps(config))
    tensors = load_file(str(source / "model.safetensors"))
    save_file(dict(tensors, **{"verifier_lm_head.weight": torch.full((128, 32), float("nan"))}),
              str(source / "model.safetensors"))
    out = converted(source, VerifierFacts(VERIFIER_CONFIG, None), tmp_path / "out")  # the source names one
    decisions = json.loads((out / "config.json").read_text())["specfmt_provenance"]["conversion"]["decisions"]
    assert {("dropped", "auto_map"), ("dropped", "verifier_lm_head.weight"), ("default", "target_hidden_size")} <= \
        {(d["kind"], d["subject"]) for d in decisions}
    expected = logits_of(source, verifier, "compat")
    assert (logits_of(out, verifier, "strict") - expected).abs().max() < TOLERANCE * expected.abs().max()


def v0_1_form(source: Path, default: str) -> dict:
    """A v0.2.0 corpus config as transformers 4 and speculators v0.1-v0.2 wrote it: torch_dtype, and a sampling
    proposal method beside the greedy one (git show v0.2.0:src/speculators/proposals/sampling.py)."""
    config = json.loads((source / "config.json").read_text())
    config["torch_dtype"] = config.pop("dtype")
    config["speculators_config"].update(default_proposal_method=default, proposal_methods=[
        {"proposal_type": "sampling", "speculative_tokens": 5, "accept_lenience": 1.0},
        {"proposal_type": "greedy", "speculative_tokens": 5, "verifier_accept_k": 1, "accept_tolerance": 0.0}])
    (source / "config.json").write_text(json.dumps(config))
    return config


def test_a_v0_1_config_has_torch_dtype_translated_and_an_unused_removed_proposal_type_dropped(tmp_path):
    source = corpus_checkpoint("v0.2.0--eagle_layernorms0_fusionbias0", tmp_path / "source")
    out = converted(source, corpus_verifier(v0_1_form(source, "greedy")), tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "float32"
    assert [m["proposal_type"] for m in config["speculators_config"]["proposal_methods"]] == ["greedy"]


def test_a_removed_proposal_type_as_the_default_is_refused_with_a_flag_that_works(tmp_path):
    source = corpus_checkpoint("v0.2.0--eagle_layernorms0_fusionbias0", tmp_path / "source")
    facts = corpus_verifier(v0_1_form(source, "sampling"))
    with pytest.raises(Refused) as refused:
        converted(source, facts, tmp_path / "out")
    (refusal,) = refused.value.refusals
    assert refusal.pointer == "/speculators_config/proposal_methods"
    given = parse_sets([pair.strip() for pair in refusal.flag.split("--set") if pair.strip()])  # as the CLI reads it
    out = converted(source, facts, tmp_path / "out", given)
    assert json.loads((out / "config.json").read_text())["speculators_config"]["default_proposal_method"] == "greedy"


# speculators v0.1.0-v0.4.0 IndependentSpeculatorConfig.from_pretrained_config: the draft LM's
# PretrainedConfig.to_dict() with its model_type written back, plus speculators_model_type "independent",
# speculators_config and speculators_version (src/speculators/models/independent.py; other-formats.md 5.3).
def flattened(variant: str) -> dict:
    v1 = config_of(variant)
    lm = dict(v1["transformer_layer_config"], architectures=["LlamaForCausalLM"], bos_token_id=1, eos_token_id=2,
              torch_dtype="float32", transformers_version="4.53.2", use_cache=True, rope_theta=10000.0)
    return {**lm, "speculators_model_type": "independent", "speculators_version": "0.1.0",
            "speculators_config": {"algorithm": "independent", "default_proposal_method": "greedy",
                                   "proposal_methods": [{"proposal_type": "greedy", "speculative_tokens": 5}],
                                   "verifier": {"name_or_path": "meta-llama/Llama-3.1-8B-Instruct",
                                                "architectures": ["LlamaForCausalLM"]}}}


def test_a_flattened_independent_config_becomes_a_v1_independent_draft_of_the_same_math(tmp_path, verifier):
    original = write_variant("independent", tmp_path / "v1", std=0.2)
    source = tmp_path / "flat"
    source.mkdir()
    (source / "config.json").write_text(json.dumps(flattened("independent")))
    (source / "model.safetensors").write_bytes((original / "model.safetensors").read_bytes())
    assert validate(source, "compat").errors  # compat does not read this form
    out = converted(source, VerifierFacts(VERIFIER_CONFIG, None), tmp_path / "out")
    assert validate(out, "strict").findings == []
    config = json.loads((out / "config.json").read_text())
    assert config["transformer_layer_config"]["model_type"] == "llama" and "model_type" not in config
    assert config["speculators_config"]["verifier"]["name_or_path"] == "meta-llama/Llama-3.1-8B-Instruct"
    expected = logits_of(original, verifier, "strict")
    assert (logits_of(out, verifier, "strict") - expected).abs().max() < TOLERANCE * expected.abs().max()


def test_the_config_only_mlp_type_is_refused_as_unsupported(tmp_path):
    source = tmp_path / "mlp"
    source.mkdir()
    # speculators v0.2.0 src/speculators/models/mlp.py MLPSpeculatorConfig fields (other-formats.md 2.5)
    (source / "config.json").write_text(json.dumps({
        "speculators_model_type": "mlp", "architectures": ["MLPSpeculator"], "torch_dtype": "bfloat16",
        "inputs": ["input_embeddings", "hidden_states[-1]"], "inputs_hidden_states_normalized": False,
        "hidden_size": 32, "intermediate_size": 32, "vocab_size": 128, "num_layers": 5, "tie_weights": True,
        "speculators_config": {"algorithm": "mlp", "default_proposal_method": "greedy", "proposal_methods": [
            {"proposal_type": "greedy", "speculative_tokens": 5}], "verifier": {"name_or_path": CORPUS_VERIFIER_NAME,
                                                                              "architectures": []}}}))
    save_file({"head.0.weight": torch.zeros(128, 32)}, str(source / "model.safetensors"))
    with pytest.raises(Refused) as refused:
        converted(source, VerifierFacts(VERIFIER_CONFIG, CORPUS_VERIFIER_NAME), tmp_path / "out")
    assert [(r.pointer, r.code) for r in refused.value.refusals] == [("/speculators_model_type", "convert.unsupported")]


def test_specfmt_convert_from_speculators_exits_1_with_a_refusal_and_0_once_set(tmp_path):
    source = corpus_checkpoint("head-converted--dflash_converted", tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    del config["sliding_window_non_causal"]
    (source / "config.json").write_text(json.dumps(config))
    verifier = tmp_path / "verifier.json"
    verifier.write_text(json.dumps(corpus_verifier(config).config))
    command = [sys.executable, "-m", "specfmt", "convert", str(source), "--from", "speculators", "--verifier",
               str(verifier), "--out", str(tmp_path / "out")]  # the source names its verifier's hub id
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and "supply --set sliding_window_non_causal=false|true" in refused.stderr
    done = subprocess.run(command + ["--set", "sliding_window_non_causal=false"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "dropped: auto_map" in done.stdout and "given: sliding_window_non_causal" in done.stdout


def test_a_wrong_verifier_names_the_tensor_shapes_its_facts_contradict_and_the_flag(tmp_path):
    source = write_variant("mlp_speculator", tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    del config["speculators_config"]["verifier"]["hidden_size"]
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(Refused) as refused:
        converted(source, VerifierFacts(dict(VERIFIER_CONFIG, hidden_size=64), None), tmp_path / "out")
    (refusal,) = refused.value.refusals
    assert refusal.code == "convert.verifier_mismatch" and refusal.flag.startswith("--verifier PATH")
    assert "proj.0.weight is [" in refusal.message and "where --verifier's hidden_size makes it" in refusal.message


def test_a_verifier_that_contradicts_the_checkpoint_is_refused_listing_both_values_of_each_fact(tmp_path):
    source = write_variant("eagle3", tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    del config["speculators_config"]["verifier"]["num_hidden_layers"]
    (source / "config.json").write_text(json.dumps(config))
    other = dict(VERIFIER_CONFIG, hidden_size=64, num_hidden_layers=12, vocab_size=256)
    with pytest.raises(Refused) as refused:
        converted(source, VerifierFacts(other, None), tmp_path / "out")
    (refusal,) = refused.value.refusals
    assert refusal.code == "convert.verifier_mismatch"
    assert "hidden_size is 32 in the checkpoint, 64 in --verifier" in refusal.message
    assert "vocab_size is 128 in the checkpoint, 256 in --verifier" in refusal.message
