"""specfmt export: the vLLM form (the checkpoint as it is) and the SGLang form (SafeAILab/SpecForge names and aux
numbering), what SGLang cannot serve refused, and round trips back through specfmt convert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from builders import DEMO_DRAFT, VERIFIER_CONFIG, config_of, tensors_for, verifier_for, write_verifier
from specfmt import save, validate
from specfmt.cli import main
from specfmt.convert import FORMATS, converter, write
from specfmt.convert.common import Refused, VerifierFacts, read_source
from specfmt.convert.export import export
from specfmt.defaults import resolve
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import load_draft

TOLERANCE = 1e-6  # the same tensors and config on one machine: the proposals' logits agree to rounding


def sglang_ready(**changes) -> dict:
    """The eagle3 builder variant as SGLang can serve it: residual before hidden_norm, aux ids from CFG-9 id 2."""
    return config_of("eagle3") | {"norm_before_residual": False, "eagle_aux_hidden_state_layer_ids": [2, 3, 5]} | \
        changes


def saved(path: Path, config: dict, embed: bool = False) -> Path:
    tensors = tensors_for(config, std=0.2)
    if not embed:
        del tensors["embed_tokens.weight"]
    return save(config, tensors, path)


def convert_back(path: Path, out: Path, fmt: str, facts: VerifierFacts, given: dict | None = None) -> Path:
    conversion = converter(fmt)(read_source(path), facts, given or {})
    return write(conversion, out, "specfmt convert", fmt, str(path), [])


def comparable(config: dict) -> dict:
    """A config with its defaults resolved and its provenance left out: what a reader computes from."""
    return {k: v for k, v in resolve(config).items() if k != "specfmt_provenance"}


def same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert sorted(ta) == sorted(tb)
    assert all(ta[name].dtype == tb[name].dtype and torch.equal(ta[name], tb[name]) for name in ta)


def test_the_vllm_export_is_the_checkpoint_as_it_is_with_the_serve_command(tmp_path):
    source = saved(tmp_path / "draft", config_of("eagle3"), embed=True)
    done = export(source, "vllm", tmp_path / "vllm")
    assert validate(done.out, "strict").findings == []
    assert {p.name: p.read_bytes() for p in done.out.iterdir()} == {p.name: p.read_bytes() for p in source.iterdir()}
    spec = {"model": str(done.out.resolve()), "method": "eagle3", "num_speculative_tokens": 3}
    assert done.command == f"vllm serve local/verifier --speculative-config '{json.dumps(spec)}'"


def test_the_vllm_export_of_peagle_asks_for_parallel_drafting():
    assert '"method": "eagle3", "parallel_drafting": true' in export_command("peagle")


def export_command(variant: str) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return export(saved(Path(tmp) / "draft", config_of(variant), embed=True), "vllm", Path(tmp) / "out").command


def test_vllm_refuses_a_type_it_does_not_read(tmp_path):
    source = save(config_of("eagle"), tensors_for(config_of("eagle")), tmp_path / "draft")
    with pytest.raises(Refused) as refused:
        export(source, "vllm", tmp_path / "out")
    assert [r.pointer for r in refused.value.refusals] == ["/speculators_model_type"]
    assert not (tmp_path / "out").exists()


def test_the_vllm_export_converts_back_through_speculators_unchanged(tmp_path):
    if "speculators" not in FORMATS:
        pytest.skip("--from speculators is not registered yet (the vLLM export is compared directly above)")
    source = saved(tmp_path / "draft", config_of("eagle3"), embed=True)
    done = export(source, "vllm", tmp_path / "vllm")
    back = convert_back(done.out, tmp_path / "back", "speculators", VerifierFacts(VERIFIER_CONFIG, "local/verifier"))
    same_tensors(source, back)
    assert comparable(json.loads((back / "config.json").read_text())) == \
        comparable(json.loads((source / "config.json").read_text()))


def proposals(path: Path, verifier, prompts: list[list[int]]) -> list[tuple[list[int], list[torch.Tensor]]]:
    draft, _ = load_draft(path, verifier, "strict")
    out = []
    for prompt in prompts:
        verifier.truncate(0)
        v = verifier.forward(torch.tensor(prompt), draft.aux_ids)
        draft.reset()
        recorder = RecordingPicker()
        drafted = draft.propose(Context(prompt + [int(v.logits[-1].argmax())], v.aux, v.last, v.normed), 3,
                                recorder)
        out.append((drafted.tokens.tolist(), recorder.logits))
    return out


def test_a_draft_exported_for_sglang_and_converted_back_proposes_the_same(tmp_path):
    source = saved(tmp_path / "draft", sglang_ready())
    done = export(source, "sglang", tmp_path / "sglang")
    sg = json.loads((done.out / "config.json").read_text())
    assert sg["architectures"] == ["LlamaForCausalLMEagle3"]
    assert sg["eagle_config"]["eagle_aux_hidden_state_layer_ids"] == [1, 2, 4]  # output of layer X = CFG-9 X + 1
    assert sorted(load_file(str(done.out / "model.safetensors")))[:3] == ["d2t", "fc.weight", "lm_head.weight"]
    assert "--speculative-algorithm EAGLE3" in done.command and "--speculative-num-steps 3" in done.command
    back = convert_back(done.out, tmp_path / "back", "eagle3-research", VerifierFacts(VERIFIER_CONFIG,
                                                                                      "local/verifier"))
    same_tensors(source, back)
    original, returned = (json.loads((p / "config.json").read_text()) for p in (source, back))
    assert comparable(returned) == comparable(original)
    verifier = verifier_for(dtype=torch.float64)
    prompts = [torch.randint(0, 128, (8,), generator=torch.Generator().manual_seed(s)).tolist() for s in range(4)]
    for (tokens_a, logits_a), (tokens_b, logits_b) in zip(proposals(source, verifier, prompts),
                                                          proposals(back, verifier, prompts), strict=True):
        assert tokens_a == tokens_b
        assert max(float((a - b).abs().max()) for a, b in zip(logits_a, logits_b, strict=True)) <= TOLERANCE


def test_the_demo_draft_round_trips_through_sglang_with_identical_tensors(tmp_path):
    done = export(DEMO_DRAFT, "sglang", tmp_path / "sglang")
    assert json.loads((done.out / "config.json").read_text())["eagle_config"]["eagle_aux_hidden_state_layer_ids"] \
        == [1, 14, 26]
    facts = VerifierFacts(json.loads((DEMO_DRAFT / "config.json").read_text())["speculators_config"]["verifier"],
                          "HuggingFaceTB/SmolLM2-135M-Instruct")
    back = convert_back(done.out, tmp_path / "back", "eagle3-research", facts)
    same_tensors(DEMO_DRAFT, back)
    assert comparable(json.loads((back / "config.json").read_text())) == \
        comparable(json.loads((DEMO_DRAFT / "config.json").read_text()))


def test_the_eagle3_draft_specfmt_train_starts_from_exports_for_sglang(tmp_path):
    """The trainer's recipe is the research layer (norm_before_residual and norm_before_fc off), which SGLang and
    TensorRT-LLM hard-wire, so what it trains serves there as well as in vLLM."""
    from specfmt.train.options import TrainOptions
    from specfmt.train.recipes import RECIPES
    from specfmt.train.recipes.eagle3 import Eagle3Options

    verifier = verifier_for(config=dict(VERIFIER_CONFIG, num_hidden_layers=8))
    recipe = RECIPES["eagle3"].make(verifier, "org/verifier", TrainOptions(steps=3), Eagle3Options(64),
                                    torch.arange(128.0))
    source = save(recipe.config, recipe.tensors, tmp_path / "draft")
    done = export(source, "sglang", tmp_path / "sglang")
    assert json.loads((done.out / "config.json").read_text())["eagle_config"]["eagle_aux_hidden_state_layer_ids"] \
        == [1, 3, 4]
    back = convert_back(done.out, tmp_path / "back", "eagle3-research", VerifierFacts(verifier.config, "org/verifier"))
    same_tensors(source, back)


@pytest.mark.parametrize(("variant", "pointers"), [
    ("eagle3_qwen3_2l_fullvocab_normfc", ["/transformer_layer_config/model_type",
                                          "/transformer_layer_config/attention_bias",
                                          "/transformer_layer_config/num_hidden_layers",
                                          "/eagle_aux_hidden_state_layer_ids", "/norm_before_residual",
                                          "/norm_before_fc", "/norm_output"]),
    ("eagle3_fcnorm_4aux", ["/eagle_aux_hidden_state_layer_ids"] * 3 + ["/norm_before_residual", "/fc_norm"]),
    ("peagle", ["/speculators_model_type"]),
])
def test_sglang_refuses_every_field_it_would_compute_otherwise(variant, pointers, tmp_path):
    source = saved(tmp_path / "draft", config_of(variant))
    with pytest.raises(Refused) as refused:
        export(source, "sglang", tmp_path / "out")
    assert [r.pointer for r in refused.value.refusals] == pointers
    assert not (tmp_path / "out").exists()


def test_a_stored_embedding_goes_to_sglang_only_when_it_is_the_verifiers(tmp_path):
    verifier = write_verifier(tmp_path / "verifier")
    config = sglang_ready()
    tensors = tensors_for(config)
    source = save(config, tensors, tmp_path / "draft")
    with pytest.raises(Refused) as refused:
        export(source, "sglang", tmp_path / "out", verifier)
    assert [(r.pointer, r.flag.split()[0]) for r in refused.value.refusals] == [("/embed_tokens.weight", "--verifier")]
    tensors["embed_tokens.weight"] = load_file(str(verifier / "model.safetensors"))["model.embed_tokens.weight"]
    source = save(config, tensors, tmp_path / "draft", overwrite=True)
    done = export(source, "sglang", tmp_path / "out", verifier)
    assert [(d.kind, d.subject) for d in done.decisions if d.kind == "dropped"] == [("dropped", "embed_tokens.weight")]
    assert "embed_tokens.weight" not in load_file(str(done.out / "model.safetensors"))


def test_the_cli_prints_the_serve_command_and_exits_1_on_a_refusal(tmp_path, capsys):
    source = saved(tmp_path / "draft", sglang_ready())
    assert main(["export", str(source), "--for", "sglang", "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == f"wrote {tmp_path / 'out'} for sglang; serve it with:"
    assert lines[-1].startswith("python -m sglang.launch_server --model-path local/verifier --speculative-algorithm "
                                "EAGLE3 --speculative-draft-model-path ")
    refused = saved(tmp_path / "refused", sglang_ready(norm_before_residual=True, norm_before_fc=True))
    assert main(["export", str(refused), "--for", "sglang", "--out", str(tmp_path / "demo")]) == 1
    assert capsys.readouterr().err.count("[convert.undecidable]") == 2


@pytest.mark.parametrize(("variant", "proposed"), [("eagle", "no flag: no export target serves eagle"),
                                                   ("peagle", "--for vllm (it serves peagle)")])
def test_an_sglang_refusal_proposes_vllm_only_for_an_algorithm_vllm_serves(variant, proposed, tmp_path):
    source = save(config_of(variant), tensors_for(config_of(variant)), tmp_path / "draft")
    with pytest.raises(Refused) as refused:
        export(source, "sglang", tmp_path / "out")
    assert [r.flag.split(" (serve")[0] for r in refused.value.refusals] == [proposed]


def test_a_config_only_verifier_is_reported_as_nothing_compared_not_as_different(tmp_path):
    verifier = tmp_path / "verifier"
    verifier.mkdir()
    (verifier / "config.json").write_text(json.dumps(VERIFIER_CONFIG))
    source = save(sglang_ready(), tensors_for(sglang_ready()), tmp_path / "draft")
    for given in (verifier, verifier / "config.json"):
        with pytest.raises(Refused) as refused:
            export(source, "sglang", tmp_path / "out", given)
        (refusal,) = refused.value.refusals
        assert refusal.message.startswith("nothing was compared") and "differs" not in refusal.message


def test_an_export_never_replaces_its_source_and_gets_the_usual_mode(tmp_path):
    from specfmt.publish import UnsafeOut

    source = saved(tmp_path / "draft", config_of("eagle3"), embed=True)
    for out in (source, source / "inside", tmp_path):
        with pytest.raises(UnsafeOut):
            export(source, "vllm", out, overwrite=True)
    assert validate(source, "strict").ok
    done = export(source, "vllm", tmp_path / "vllm")
    assert done.out.stat().st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current
