"""specfmt convert --from mlp-speculator: IBM fms-extras MLPSpeculator directories, written here under their real names
and config keys with tiny random weights, convert to strict `mlp_speculator` checkpoints whose stage logits equal the
fms math (tests/research_draft_math.py), or are refused naming the flag that decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from builders import write_verifier
from research_draft_math import HfLlama, mlp_chain
from specfmt import validate
from specfmt.cli import main
from specfmt.convert import converter, write
from specfmt.convert.common import Refused, read_source, verifier_facts
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.verifier import Verifier

VERIFIER_NAME = "meta-llama/Meta-Llama-3-8B-Instruct"
H, V = 32, 128  # the tiny verifier's
# The config keys of ibm-fms/llama3-8b-accelerator (fms-extras variant llama.llama3.8b.3_2b: emb_dim 4096, inner_dim
# 3072, n_predict 4, vocab 128256, untied), its sizes shrunk to the tiny verifier.
LLAMA3_8B = {"architectures": ["MLPSpeculatorPreTrainedModel"], "emb_dim": H, "inner_dim": 24,
             "model_type": "mlp_speculator", "n_candidates": 5, "n_predict": 4, "scale_input": False,
             "tie_weights": False, "top_k_tokens_per_head": [4, 3, 2, 2], "torch_dtype": "float16",
             "transformers_version": "4.38.2", "vocab_size": V}
# ibm-fms/llama3-70b-accelerator (variant llama.llama3.70b.961m: emb_dim 8192, inner_dim 3584, scale_input and
# tie_weights true), shrunk likewise.
LLAMA3_70B = dict(LLAMA3_8B, inner_dim=16, scale_input=True, tie_weights=True)
PROMPT = [3, 17, 42, 5, 99, 64, 7]
# Both sides compute in float64; the runtime's recorded logits are float32 (at most 6e-8 relative), so the tolerance
# is on |difference| / max(1, |logit|).
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def verifier_dir(tmp_path_factory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("verifier") / "llama")


def stages(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every stage's own fms names (emb, proj, ln, head); with tie_weights the fms tying makes them equal copies."""
    g = torch.Generator().manual_seed(seed)
    p, d = cfg["n_predict"], cfg["inner_dim"] or cfg["emb_dim"]

    def r(*shape, scale=0.3, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(torch.float16)

    t = {}
    for i in range(p):
        t.update({f"emb.{i}.weight": r(V, d), f"proj.{i}.weight": r(d, cfg["emb_dim"] if i == 0 else d),
                  f"ln.{i}.weight": r(d, scale=0.1, shift=1.0), f"ln.{i}.bias": r(d, scale=0.1),
                  f"head.{i}.weight": r(V, d)})
    if cfg["tie_weights"]:  # fms: emb, head and ln shared with stage 0, proj.{i>=2} with proj.1
        for i in range(1, p):
            t.update({f"{n}.{i}.{part}": t[f"{n}.0.{part}"] for n, part in
                      (("emb", "weight"), ("head", "weight"), ("ln", "weight"), ("ln", "bias"))})
            if i >= 2:
                t[f"proj.{i}.weight"] = t["proj.1.weight"]
    return t


def write_source(path: Path, cfg: dict, tensors: dict, prefix: str = "speculator.") -> Path:
    """An HF directory as MLPSpeculatorPreTrainedModel.save_pretrained writes it: the module under `speculator`."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file({prefix + n: t.clone() for n, t in tensors.items()}, str(path / "model.safetensors"))
    return path


def convert(src: Path, verifier_dir: Path, out: Path, given: dict | None = None):
    facts = verifier_facts(str(verifier_dir), VERIFIER_NAME)
    conversion = converter("mlp-speculator")(read_source(src), facts, given or {})
    return write(conversion, out, "specfmt convert", "mlp-speculator", str(src), []), conversion


def max_logit_difference(out: Path, verifier_dir: Path, src_stages: dict, cfg: dict) -> float:
    """The converted draft's stages against the fms math after the verifier's greedy token: the largest
    |difference| / max(1, |logit|)."""
    verifier = Verifier.from_pretrained(verifier_dir, dtype=torch.float64)
    draft, _ = load_draft(out, verifier, "strict")
    hf = HfLlama(verifier_dir)
    pending = hf.greedy(PROMPT)
    run = verifier.forward(torch.tensor(PROMPT))
    recorder = RecordingPicker()
    draft.propose(Context(PROMPT + [pending], run.aux, run.last, run.normed), cfg["n_predict"], recorder)
    expected = mlp_chain(src_stages, cfg, hf.normed(PROMPT)[-1], pending, cfg["n_predict"])
    return max(float(((got.double() - want).abs() / want.abs().clamp(min=1)).max())
               for got, want in zip(recorder.logits, expected, strict=True))


def decided(conversion) -> set[tuple[str, str]]:
    return {(d.kind, d.subject) for d in conversion.decisions}


def test_an_untied_speculator_converts_with_its_prefix_stripped(verifier_dir, tmp_path):
    src_stages = stages(LLAMA3_8B)
    src = write_source(tmp_path / "src", LLAMA3_8B, src_stages)
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert validate(out, "strict").findings == []
    config = json.loads((out / "config.json").read_text())
    assert {k: config[k] for k in ("n_predict", "inner_dim", "tie_weights", "scale_input", "top_k_tokens_per_head",
                                   "n_candidates", "dtype")} == {
        "n_predict": 4, "inner_dim": 24, "tie_weights": False, "scale_input": False,
        "top_k_tokens_per_head": [4, 3, 2, 2], "n_candidates": 5, "dtype": "float16"}
    assert ("renamed", r"speculator\.(.+)") in decided(conversion)
    assert max_logit_difference(out, verifier_dir, src_stages, LLAMA3_8B) < TOLERANCE


def test_tied_weights_stored_once_are_written_under_every_stage_name(verifier_dir, tmp_path):
    src_stages = stages(LLAMA3_70B)
    once = {n: t for n, t in src_stages.items() if n.split(".")[1] == "0" or n == "proj.1.weight"}
    src = write_source(tmp_path / "src", LLAMA3_70B, once)
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert ("computed", "emb.*, head.*, ln.*, proj.*") in decided(conversion)
    stored = load_file(str(out / "model.safetensors"))
    assert set(stored) == set(src_stages)
    assert torch.equal(stored["head.3.weight"], stored["head.0.weight"])
    assert torch.equal(stored["proj.3.weight"], stored["proj.1.weight"])
    assert max_logit_difference(out, verifier_dir, src_stages, LLAMA3_70B) < TOLERANCE


def test_a_speculator_whose_inner_dim_is_0_uses_the_verifier_width(verifier_dir, tmp_path):
    cfg = dict(LLAMA3_8B, inner_dim=0, n_predict=3, top_k_tokens_per_head=[5, 4, 3])
    src_stages = stages(cfg)
    src = write_source(tmp_path / "src", cfg, src_stages, prefix="")
    out, _ = convert(src, verifier_dir, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["inner_dim"] == 0
    assert max_logit_difference(out, verifier_dir, src_stages, cfg) < TOLERANCE


def test_absent_flags_take_the_fms_defaults_and_say_so(verifier_dir, tmp_path):
    cfg = {k: v for k, v in LLAMA3_8B.items() if k not in ("scale_input", "tie_weights")}
    out, conversion = convert(write_source(tmp_path / "src", cfg, stages(LLAMA3_8B)), verifier_dir, tmp_path / "out")
    assert {("default", "scale_input"), ("default", "tie_weights")} <= decided(conversion)
    assert validate(out, "strict").findings == []


def test_missing_stage_names_without_tie_weights_are_refused_naming_the_flag(verifier_dir, tmp_path):
    once = {n: t for n, t in stages(LLAMA3_70B).items() if n.split(".")[1] == "0" or n == "proj.1.weight"}
    src = write_source(tmp_path / "src", dict(LLAMA3_70B, tie_weights=False), once)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [
        ("/tie_weights", "--set tie_weights=true (fms tying fills them in)")]
    out, conversion = convert(src, verifier_dir, tmp_path / "out", {"tie_weights": True})
    assert ("given", "tie_weights") in decided(conversion)
    assert validate(out, "strict").findings == []


def test_tied_copies_that_differ_are_refused_naming_the_flag(verifier_dir, tmp_path):
    tensors = stages(LLAMA3_8B)  # every stage its own weights, but the config says tied
    src = write_source(tmp_path / "src", dict(LLAMA3_8B, tie_weights=True), tensors)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert {r.flag for r in refused.value.refusals} == {"--set tie_weights=false (each stage keeps its own)"}


def test_a_speculator_for_another_verifier_is_refused_naming_the_verifier_flag(verifier_dir, tmp_path):
    cfg = dict(LLAMA3_8B, emb_dim=16)
    src = write_source(tmp_path / "src", cfg, stages(cfg))
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [r.flag for r in refused.value.refusals] == ["--verifier PATH (a verifier with hidden_size 16)"]


def test_specfmt_convert_mlp_speculator_prints_each_decision(verifier_dir, tmp_path, capsys):
    once = {n: t for n, t in stages(LLAMA3_70B).items() if n.split(".")[1] == "0" or n == "proj.1.weight"}
    src = write_source(tmp_path / "src", LLAMA3_70B, once)
    assert main(["convert", str(src), "--from", "mlp-speculator", "--verifier", str(verifier_dir),
                 "--verifier-name", VERIFIER_NAME, "--out", str(tmp_path / "out")]) == 0
    assert "computed: emb.*, head.*, ln.*, proj.*: 14 tied copies" in capsys.readouterr().out


def test_an_absent_n_predict_hidden_by_tied_storage_is_refused_naming_the_flag(verifier_dir, tmp_path):
    once = {n: t for n, t in stages(LLAMA3_70B).items() if n.split(".")[1] == "0" or n == "proj.1.weight"}
    cfg = {k: v for k, v in LLAMA3_70B.items() if k != "n_predict"}
    src = write_source(tmp_path / "src", cfg, once)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [("/n_predict", "--set n_predict=N")]
    out, _ = convert(src, verifier_dir, tmp_path / "out", {"n_predict": 4})
    assert validate(out, "strict").findings == []


def test_every_refusal_comes_in_one_run_as_one_line_each(verifier_dir, tmp_path, capsys):
    once = {n: t for n, t in stages(LLAMA3_70B).items() if n.split(".")[1] == "0" or n == "proj.1.weight"}
    src = write_source(tmp_path / "src", {k: v for k, v in LLAMA3_70B.items() if k != "n_predict"}, once)
    # n_predict hidden by tied storage, no --verifier-name for a local verifier, and a --set strict rejects
    code = main(["convert", str(src), "--from", "mlp-speculator", "--verifier", str(verifier_dir), "--out",
                 str(tmp_path / "out"), "--set", "scale_input=maybe"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line.split("#", 1)[1].split(": ")[0] for line in err.splitlines()] == [
        "/n_predict", "/speculators_config/verifier", "/scale_input"]
