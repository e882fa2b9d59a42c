"""specfmt convert --from medusa: FasterDecoding Medusa heads in each on-disk form, written here under their real
names and config keys with tiny random weights, convert to strict `medusa` checkpoints whose head logits equal the
FasterDecoding math (tests/research_draft_math.py), or are refused naming the flag that decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from builders import write_verifier
from research_draft_math import HfLlama, medusa_heads
from specfmt import validate
from specfmt.cli import main
from specfmt.convert import converter, write
from specfmt.convert.common import Refused, SourceError, read_source, verifier_facts
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.verifier import Verifier

VERIFIER_NAME = "lmsys/vicuna-7b-v1.3"
H, V = 32, 128  # the tiny verifier's
# The keys of FasterDecoding/medusa-vicuna-7b-v1.3 config.json (v0.1, heads only in medusa_lm_head.pt); it says 2
# heads while the file holds more (TensorRT-LLM's examples/medusa/README.md: 4).
V01 = {"base_model_name_or_path": "lmsys/vicuna-7b-v1.3", "medusa_num_heads": 2, "medusa_num_layers": 1,
       "transformers_version": "4.33.2"}
# The MedusaConfig that medusa/train/train_legacy.py saves beside medusa_lm_head.safetensors ("version 2", commit
# 2b8020f): heads without an output matrix, read through the base lm_head.
LEGACY = {"base_model_name_or_path": "lmsys/vicuna-7b-v1.3", "medusa_num_heads": 3, "medusa_num_layers": 1,
          "version": "2", "transformers_version": "4.34.1"}
# FasterDecoding/medusa-1.0-vicuna-7b-v1.5: a full model directory, the base's llama config plus the medusa keys.
FULL = {"architectures": ["MedusaModel"], "model_type": "llama", "hidden_size": H, "intermediate_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 6, "vocab_size": V,
        "rms_norm_eps": 1e-06, "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
        "medusa_num_heads": 3, "medusa_num_layers": 1, "transformers_version": "4.36.2"}
PROMPT = [3, 17, 42, 5, 99, 64, 7]
# Both sides compute in float64; the runtime's recorded logits are float32 (at most 6e-8 relative), so the tolerance
# is on |difference| / max(1, |logit|).
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def verifier_dir(tmp_path_factory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("verifier") / "vicuna")


def heads(num_heads: int, num_layers: int, output: bool = True, seed: int = 0, dtype=torch.float16,
          shared: bool = True) -> dict[str, torch.Tensor]:
    """FasterDecoding head state dict names: {k}.{l}.linear.{weight,bias}, {k}.{L}.weight. `shared`: the L blocks of
    a head are one tensor, as [ResBlock] * L makes them."""
    g = torch.Generator().manual_seed(seed)
    t = {}
    for k in range(num_heads):
        block = {"weight": torch.randn(H, H, generator=g) * 0.3, "bias": torch.randn(H, generator=g) * 0.3}
        for r in range(num_layers):
            if not shared:
                block = {n: torch.randn(x.shape, generator=g) * 0.3 for n, x in block.items()}
            t.update({f"{k}.{r}.linear.{n}": x.to(dtype) for n, x in block.items()})
        if output:
            t[f"{k}.{num_layers}.weight"] = (torch.randn(V, H, generator=g) * 0.3).to(dtype)
    return t


def write_source(path: Path, cfg: dict | None, tensors: dict, file: str) -> Path:
    path.mkdir(parents=True)
    if cfg is not None:
        (path / "config.json").write_text(json.dumps(cfg, indent=2))
    if file.endswith(".pt"):
        torch.save(tensors, path / file)
    else:
        save_file(tensors, str(path / file))
    return path


def convert(src: Path, verifier_dir: Path, out: Path, given: dict | None = None):
    facts = verifier_facts(str(verifier_dir), VERIFIER_NAME)
    conversion = converter("medusa")(read_source(src), facts, given or {})
    return write(conversion, out, "specfmt convert", "medusa", str(src), []), conversion


def max_logit_difference(out: Path, verifier_dir: Path, src_heads: dict, num_heads: int, num_layers: int,
                         original: bool) -> float:
    """Every head's logits from the converted draft against the FasterDecoding math, on the verifier's state at the
    last position it ran: the largest |difference| / max(1, |logit|)."""
    verifier = Verifier.from_pretrained(verifier_dir, dtype=torch.float64)
    draft, _ = load_draft(out, verifier, "strict")
    hf = HfLlama(verifier_dir)
    run = verifier.forward(torch.tensor(PROMPT))
    recorder = RecordingPicker()
    draft.propose(Context(PROMPT + [hf.greedy(PROMPT)], run.aux, run.last, run.normed), num_heads, recorder)
    expected = medusa_heads(src_heads, hf.normed(PROMPT)[-1], num_heads, num_layers, hf.lm_head if original else None)
    return max(float(((got.double() - want).abs() / want.abs().clamp(min=1)).max())
               for got, want in zip(recorder.logits, expected, strict=True))


def decided(conversion) -> set[tuple[str, str]]:
    return {(d.kind, d.subject) for d in conversion.decisions}


def test_v0_1_heads_in_a_pickle_convert_with_the_head_count_taken_from_the_tensors(verifier_dir, tmp_path):
    src_heads = heads(4, 1)
    src = write_source(tmp_path / "src", V01, src_heads, "medusa_lm_head.pt")
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert validate(out, "strict").findings == []
    config = json.loads((out / "config.json").read_text())
    assert (config["medusa_num_heads"], config["medusa_num_layers"], config["medusa_fc_bias"],
            config["original_lm_head"], config["dtype"]) == (4, 1, True, False, "float16")
    assert ("translated", "medusa_num_heads") in decided(conversion)
    assert set(load_file(str(out / "model.safetensors"))) == {
        f"blocks.{k}.layers.0.{p}" for k in range(4) for p in ("weight", "bias")} | {f"lm_heads.{k}.weight"
                                                                                   for k in range(4)}
    assert max_logit_difference(out, verifier_dir, src_heads, 4, 1, False) < TOLERANCE


def test_legacy_version_2_heads_read_the_verifier_lm_head(verifier_dir, tmp_path):
    src_heads = heads(3, 1, output=False, dtype=torch.bfloat16)
    src = write_source(tmp_path / "src", LEGACY, src_heads, "medusa_lm_head.safetensors")
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert (config["original_lm_head"], config["dtype"]) == (True, "bfloat16")
    assert ("translated", "original_lm_head") in decided(conversion)
    assert max_logit_difference(out, verifier_dir, src_heads, 3, 1, True) < TOLERANCE


@pytest.mark.parametrize("prefix", ["medusa_head.", "medusa_heads."], ids=["medusa-1.0-full-model", "modelopt"])
def test_a_full_model_directory_gives_its_heads_and_drops_the_base(prefix, verifier_dir, tmp_path):
    src_heads = heads(3, 1, dtype=torch.float32)
    base = load_file(str(verifier_dir / "model.safetensors"))
    src = write_source(tmp_path / "src", FULL, {**base, **{prefix + n: t for n, t in src_heads.items()}},
                       "model.safetensors")
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert ("renamed", f"{prefix}*") in decided(conversion)
    assert ("dropped", "the base model's tensors") in decided(conversion)
    assert max_logit_difference(out, verifier_dir, src_heads, 3, 1, False) < TOLERANCE


def test_quantized_modelopt_heads_are_refused(verifier_dir, tmp_path):
    tensors = {f"medusa_heads.{n}": t for n, t in heads(2, 1).items()}
    tensors["medusa_heads.0.0.linear.weight_scale"] = torch.ones(1)
    src = write_source(tmp_path / "src", None, tensors, "model.safetensors")
    with pytest.raises(SourceError, match="weight_scale"):
        convert(src, verifier_dir, tmp_path / "out")


def test_shared_resblocks_are_stored_as_equal_copies_and_run_as_fasterdecoding_runs_them(verifier_dir, tmp_path):
    src_heads = heads(3, 2)
    src = write_source(tmp_path / "src", dict(V01, medusa_num_heads=3, medusa_num_layers=2), src_heads,
                       "medusa_lm_head.pt")
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert ("translated", "{k}.{l}.linear.*") in decided(conversion)
    assert max_logit_difference(out, verifier_dir, src_heads, 3, 2, False) < TOLERANCE


def test_a_deduplicated_shared_block_is_filled_in_for_every_layer(verifier_dir, tmp_path):
    src_heads = {n: t for n, t in heads(3, 2).items() if ".1.linear." not in n}  # a save that kept one name
    src = write_source(tmp_path / "src", dict(V01, medusa_num_heads=3, medusa_num_layers=2), src_heads,
                       "medusa_lm_head.safetensors")
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert ("computed", "{k}.{l}.linear.*") in decided(conversion)
    stored = load_file(str(out / "model.safetensors"))
    assert torch.equal(stored["blocks.2.layers.1.weight"], stored["blocks.2.layers.0.weight"])
    assert max_logit_difference(out, verifier_dir, src_heads, 3, 2, False) < TOLERANCE


def test_blocks_that_differ_are_kept_as_separate_blocks_with_the_decision_recorded(verifier_dir, tmp_path):
    src = write_source(tmp_path / "src", dict(V01, medusa_num_layers=2), heads(2, 2, shared=False),
                       "medusa_lm_head.pt")
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert ("translated", "medusa_num_layers") in decided(conversion)
    assert validate(out, "strict").findings == []


def test_set_medusa_num_heads_keeps_the_first_heads(verifier_dir, tmp_path):
    src = write_source(tmp_path / "src", V01, heads(4, 1), "medusa_lm_head.pt")
    out, conversion = convert(src, verifier_dir, tmp_path / "out", {"medusa_num_heads": 2})
    assert json.loads((out / "config.json").read_text())["medusa_num_heads"] == 2
    assert ("dropped", "heads 2..3") in decided(conversion)
    assert not any(n.startswith(("blocks.2", "lm_heads.3")) for n in load_file(str(out / "model.safetensors")))


def test_version_2_with_output_matrices_is_refused_until_original_lm_head_is_set(verifier_dir, tmp_path):
    src = write_source(tmp_path / "src", LEGACY, heads(3, 1), "medusa_lm_head.safetensors")
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [("/version", "--set original_lm_head=true|false")]
    out, conversion = convert(src, verifier_dir, tmp_path / "out", {"original_lm_head": True})
    assert ("dropped", "{k}.{L}.weight") in decided(conversion)
    assert validate(out, "strict").findings == []


def test_heads_of_another_width_are_refused_naming_the_verifier_flag(verifier_dir, tmp_path):
    narrow = {n: t[..., :16] if n.endswith("linear.weight") or n.endswith(".1.weight") else t
              for n, t in heads(2, 1).items()}
    narrow = {n: t[:16] if n.endswith(("linear.weight", "linear.bias")) else t for n, t in narrow.items()}
    src = write_source(tmp_path / "src", V01, {n: t.contiguous() for n, t in narrow.items()}, "medusa_lm_head.pt")
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [r.flag for r in refused.value.refusals] == ["--verifier PATH (a verifier with hidden_size 16)"]


def test_specfmt_convert_medusa_prints_each_decision(verifier_dir, tmp_path, capsys):
    src = write_source(tmp_path / "src", V01, heads(4, 1), "medusa_lm_head.pt")
    assert main(["convert", str(src), "--from", "medusa", "--verifier", str(verifier_dir), "--verifier-name",
                 VERIFIER_NAME, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "translated: medusa_num_heads: 4: counted from the tensors; config.json says 2" in printed


def test_every_refusal_comes_in_one_run_as_one_line_each(verifier_dir, tmp_path, capsys):
    src = write_source(tmp_path / "src", LEGACY, heads(3, 1), "medusa_lm_head.safetensors")
    # the version "2" conflict, no --verifier-name for a local verifier, and a --set strict rejects
    code = main(["convert", str(src), "--from", "medusa", "--verifier", str(verifier_dir), "--out",
                 str(tmp_path / "out"), "--set", "speculators_config.proposal_methods.0.speculative_tokens=0"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line.split("#", 1)[1].split(": ")[0] for line in err.splitlines()] == [
        "/version", "/speculators_config/verifier", "/speculators_config/proposal_methods/0/speculative_tokens"]


def test_a_rename_line_prints_its_pattern_once(verifier_dir, tmp_path):
    src = write_source(tmp_path / "src", V01, heads(2, 1), "medusa_lm_head.pt")
    _, conversion = convert(src, verifier_dir, tmp_path / "out")
    lines = [d.line() for d in conversion.decisions if d.kind == "renamed" and d.subject.startswith("(")]
    assert lines and all(line.count(line.split(": ")[1]) == 1 for line in lines)
