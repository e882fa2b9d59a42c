"""specfmt convert --from eagle-research: SafeAILab EAGLE-1/2 and HASS research checkpoints, written here under their
real tensor names and config keys with tiny random weights, convert to strict `eagle` checkpoints whose draft logits
equal the research math (tests/research_draft_math.py), or are refused naming the flag that decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from builders import write_verifier
from research_draft_math import HfLlama, eagle_chain
from specfmt import validate
from specfmt.cli import main
from specfmt.convert import converter, write
from specfmt.convert.common import Refused, SourceError, read_source, verifier_facts
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.verifier import Verifier

VERIFIER_NAME = "meta-llama/Meta-Llama-3-8B-Instruct"
# The keys and values of SafeAILab/EAGLE eagle/train/EAGLE-LLaMA3-Instruct-8B.json (the draft config of
# yuhuili/EAGLE-LLaMA3-Instruct-8B: bias false, 8 KV heads for 32), its sizes shrunk to the tiny verifier (H 32, V 128).
LLAMA3 = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu",
          "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 112, "max_position_embeddings": 2048,
          "model_type": "llama", "num_attention_heads": 4, "num_key_value_heads": 1, "num_hidden_layers": 1,
          "pad_token_id": 0, "rms_norm_eps": 1e-05, "tie_word_embeddings": False, "torch_dtype": "float16",
          "transformers_version": "4.28.1", "use_cache": True, "vocab_size": 128, "rope_theta": 500000.0,
          "bias": False}
# The keys of SafeAILab/EAGLE train/vicuna_7B_config.json (yuhuili/EAGLE-Vicuna-7B-v1.3): no `bias` (read as true),
# no num_key_value_heads, no rope_theta; sizes shrunk likewise.
VICUNA = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
          "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 88, "max_position_embeddings": 2048,
          "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 1, "pad_token_id": 0,
          "rms_norm_eps": 1e-06, "tie_word_embeddings": False, "torch_dtype": "float16",
          "transformers_version": "4.28.1", "use_cache": True, "vocab_size": 128}
# HArmonizedSS/HASS train/EAGLE-LLaMA3-Instruct-8B has EAGLE's keys (other-formats.md §3.1); a HASS file trained with
# the norms (e.g. nm-testing/Eagle_Speculator_Llama_3_1_8B_TTT) has an fc bias and the speculators v0.2 norm names.
HASS = dict(LLAMA3, bias=True)
# The norms of the speculators research/hass Model: embed_layernorm on the embedding, hidden_layernorm on the feature
# before fc, lm_head_layernorm before the head (its decoder layers keep no input norm).
NORMS = ("embed_layernorm.weight", "hidden_layernorm.weight", "lm_head_layernorm.weight")
# The keys of speculators research/hass train/llama3_1_8_B.json (no `bias`: its Model builds fc without one), shrunk.
RESEARCH_HASS = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                 "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
                 "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 112,
                 "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama", "num_attention_heads": 4,
                 "num_hidden_layers": 1, "num_key_value_heads": 1, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
                 "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                 "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                 "transformers_version": "4.42.3", "use_cache": True, "vocab_size": 128}
# The three norms v1's layernorms expresses: a decoder layer's own input norm normalises fc's output.
V1_NORMS = ("embed_layernorm.weight", "layers.0.input_layernorm.weight", "lm_head_layernorm.weight")
# speculators research/hass train/mistral_spec_config.json states head_dim 128 for hidden_size 5120 and 32 heads
# (160 each otherwise); its attention reads config.head_dim. Shrunk: 4 heads of 16 over hidden_size 32.
WIDE_HEADS = dict(LLAMA3, head_dim=16)
PROMPT = [3, 17, 42, 5, 99, 64, 7]
K = 3
# Both sides compute in float64; the runtime's recorded logits are rounded to float32 (at most 6e-8 relative), so the
# tolerance is on |difference| / max(1, |logit|).
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def verifier_dir(tmp_path_factory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("verifier") / "llama")


def research_tensors(cfg: dict, verifier_dir: Path, seed: int = 0, fc_bias: bool = False,
                     norms: tuple[str, ...] | bool = False, qkv_bias: bool = False, embed: bool = False
                     ) -> dict[str, torch.Tensor]:
    """Random research tensors under cnets1.py's names, in the config's torch_dtype; `norms` names the extra norms
    (True: the HASS research set, NORMS)."""
    g = torch.Generator().manual_seed(seed)
    h, i, nh = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    d, nkv = cfg.get("head_dim", h // nh), cfg.get("num_key_value_heads", nh)

    def r(*shape, scale=0.3):
        return (torch.randn(*shape, generator=g) * scale).to(torch.float16)

    layer = "layers.0."
    t = {"fc.weight": r(h, 2 * h), layer + "self_attn.q_proj.weight": r(nh * d, h),
         layer + "self_attn.k_proj.weight": r(nkv * d, h), layer + "self_attn.v_proj.weight": r(nkv * d, h),
         layer + "self_attn.o_proj.weight": r(h, nh * d), layer + "mlp.gate_proj.weight": r(i, h),
         layer + "mlp.up_proj.weight": r(i, h), layer + "mlp.down_proj.weight": r(h, i),
         layer + "post_attention_layernorm.weight": 1 + r(h, scale=0.1)}
    if fc_bias:
        t["fc.bias"] = r(h)
    if qkv_bias:
        t.update({f"{layer}self_attn.{p}_proj.bias": r(w.shape[0]) for p in "qkv"
                  for w in [t[f"{layer}self_attn.{p}_proj.weight"]]})
    t.update({name: 1 + r(h, scale=0.1) for name in (NORMS if norms is True else norms or ())})
    if embed:  # the file's frozen copy of the verifier's embedding
        t["embed_tokens.weight"] = HfLlama(verifier_dir).embed.to(torch.float16)
    return t


def write_research(path: Path, cfg: dict, tensors: dict, pickled: bool) -> Path:
    """A research checkpoint directory: config.json and pytorch_model.bin (torch.save) or model.safetensors."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    if pickled:
        torch.save(tensors, path / "pytorch_model.bin")
    else:
        save_file(tensors, str(path / "model.safetensors"))
    return path


def convert(src: Path, verifier_dir: Path, out: Path, given: dict | None = None):
    facts = verifier_facts(str(verifier_dir), VERIFIER_NAME)
    conversion = converter("eagle-research")(read_source(src), facts, given or {})
    return write(conversion, out, "specfmt convert", "eagle-research", str(src), []), conversion


def max_logit_difference(out: Path, verifier_dir: Path, src_tensors: dict, cfg: dict) -> float:
    """The converted draft's chain of K logits rows against the research math on the same context: the largest
    |difference| / max(1, |logit|)."""
    verifier = Verifier.from_pretrained(verifier_dir, dtype=torch.float64)
    draft, _ = load_draft(out, verifier, "strict")
    hf = HfLlama(verifier_dir)
    context = PROMPT + [hf.greedy(PROMPT)]
    run = verifier.forward(torch.tensor(PROMPT))
    recorder = RecordingPicker()
    draft.propose(Context(list(context), run.aux, run.last, run.normed), K, recorder)
    expected = eagle_chain(src_tensors, cfg, hf, context, K)
    return max(float(((got.double() - want).abs() / want.abs().clamp(min=1)).max())
               for got, want in zip(recorder.logits, expected, strict=True))


def decided(conversion) -> set[tuple[str, str]]:
    return {(d.kind, d.subject) for d in conversion.decisions}


@pytest.mark.parametrize(("cfg", "pickled", "fc_bias", "norms", "qkv_bias"), [
    (LLAMA3, True, False, (), False),
    (VICUNA, False, True, (), False),
    (HASS, False, True, V1_NORMS, False),
    (dict(LLAMA3, qkv_bias=True), False, False, (), True),
    (WIDE_HEADS, False, False, (), False),
], ids=["eagle-llama3-bin", "eagle-vicuna-safetensors", "layer-input-norms", "qkv-bias", "stated-head-dim"])
def test_a_research_checkpoint_converts_to_strict_and_drafts_the_research_math(cfg, pickled, fc_bias, norms, qkv_bias,
                                                                               verifier_dir, tmp_path):
    tensors = research_tensors(cfg, verifier_dir, fc_bias=fc_bias, norms=norms, qkv_bias=qkv_bias, embed=pickled)
    src = write_research(tmp_path / "src", cfg, tensors, pickled)
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert validate(out, "strict").findings == []
    config = json.loads((out / "config.json").read_text())
    assert (config["fusion_bias"], config["layernorms"]) == (fc_bias, bool(norms))
    assert config["transformer_layer_config"]["model_type"] == ("qwen2" if qkv_bias else "llama")
    assert config["transformer_layer_config"]["head_dim"] == cfg.get("head_dim", 8)
    assert config["dtype"] == "float16"
    assert config["specfmt_provenance"]["conversion"]["decisions"] == [d.to_json() for d in conversion.decisions]
    assert max_logit_difference(out, verifier_dir, tensors, cfg) < TOLERANCE


def test_the_conversion_records_each_research_default_it_fills(verifier_dir, tmp_path):
    src = write_research(tmp_path / "src", VICUNA, research_tensors(VICUNA, verifier_dir, fc_bias=True), False)
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    layer = json.loads((out / "config.json").read_text())["transformer_layer_config"]
    assert (layer["num_key_value_heads"], layer["rope_theta"], layer["head_dim"]) == (4, 10000.0, 8)
    assert {("default", "fusion_bias"), ("default", "transformer_layer_config.num_key_value_heads"),
            ("default", "transformer_layer_config.rope_theta"), ("renamed", r"fc\.(weight|bias)"),
            ("renamed", r"layers\.0\.(.+)")} <= decided(conversion)


def test_the_files_copy_of_the_verifier_embedding_is_dropped(verifier_dir, tmp_path):
    src = write_research(tmp_path / "src", LLAMA3, research_tensors(LLAMA3, verifier_dir, embed=True), True)
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert ("dropped", "embed_tokens.weight") in decided(conversion)
    assert validate(out, "strict").findings == []


def test_a_bias_the_config_and_the_weights_disagree_on_is_refused_until_set(verifier_dir, tmp_path):
    src = write_research(tmp_path / "src", VICUNA, research_tensors(VICUNA, verifier_dir), False)  # bias read as true
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [("/bias", "--set fusion_bias=true|false")]
    out, conversion = convert(src, verifier_dir, tmp_path / "out", {"fusion_bias": False})
    assert json.loads((out / "config.json").read_text())["fusion_bias"] is False
    assert ("given", "fusion_bias") in decided(conversion)


def test_a_stored_fc_bias_the_config_disables_is_kept_only_when_set(verifier_dir, tmp_path):
    src = write_research(tmp_path / "src", LLAMA3, research_tensors(LLAMA3, verifier_dir, fc_bias=True), False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "a")
    assert [r.flag for r in refused.value.refusals] == ["--set fusion_bias=true|false"]
    kept, _ = convert(src, verifier_dir, tmp_path / "kept", {"fusion_bias": True})
    dropped, conversion = convert(src, verifier_dir, tmp_path / "dropped", {"fusion_bias": False})
    assert validate(kept, "strict").findings == validate(dropped, "strict").findings == []
    assert ("dropped", "fc.bias") in decided(conversion)


def test_incomplete_extra_norms_are_refused_naming_the_flag_that_drops_them(verifier_dir, tmp_path):
    tensors = research_tensors(HASS, verifier_dir, fc_bias=True, norms=V1_NORMS)
    del tensors["lm_head_layernorm.weight"]
    src = write_research(tmp_path / "src", HASS, tensors, False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [r.flag for r in refused.value.refusals] == ["--set layernorms=false (drops the ones found)"]
    out, conversion = convert(src, verifier_dir, tmp_path / "out", {"layernorms": False})
    assert {("dropped", "embed_layernorm.weight"), ("dropped", "layers.0.input_layernorm.weight")} <= \
        decided(conversion)
    assert validate(out, "strict").findings == []


def test_q_k_v_biases_the_config_does_not_declare_are_refused_naming_the_layer_family(verifier_dir, tmp_path):
    src = write_research(tmp_path / "src", LLAMA3, research_tensors(LLAMA3, verifier_dir, qkv_bias=True), False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [
        ("/qkv_bias", "--set transformer_layer_config.model_type=llama|qwen2")]


def test_a_verifier_of_another_width_is_refused_naming_the_verifier_flag(verifier_dir, tmp_path):
    cfg = dict(LLAMA3, hidden_size=16, intermediate_size=32)
    src = write_research(tmp_path / "src", cfg, research_tensors(cfg, verifier_dir), False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [
        ("/hidden_size", "--verifier PATH (a verifier with hidden_size 16)")]


def test_a_second_draft_layer_has_no_place_in_v1_eagle(verifier_dir, tmp_path):
    tensors = research_tensors(LLAMA3, verifier_dir)
    tensors["layers.1.post_attention_layernorm.weight"] = tensors["layers.0.post_attention_layernorm.weight"]
    src = write_research(tmp_path / "src", LLAMA3, {k: v.clone() for k, v in tensors.items()}, False)
    with pytest.raises(SourceError, match="layers.1.post_attention_layernorm.weight"):
        convert(src, verifier_dir, tmp_path / "out")


class Marker:
    """Unpickling this would create a file: the reader must refuse it without running it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_bin_holding_anything_but_tensors_is_refused_without_running_it(verifier_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(LLAMA3))
    marker = tmp_path / "ran"
    tensors = research_tensors(LLAMA3, verifier_dir)
    with open(src / "pytorch_model.bin", "wb") as f:  # torch.save's zip format, a plain object beside the tensors
        torch.save({**tensors, "extra": Marker(str(marker))}, f)
    with pytest.raises(SourceError, match="weights_only=True"):
        read_source(src)
    assert not marker.exists()
    assert main(["convert", str(src), "--from", "eagle-research", "--verifier", str(verifier_dir),
                 "--verifier-name", VERIFIER_NAME, "--out", str(tmp_path / "out")]) == 2
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_specfmt_convert_prints_each_decision_and_exits_1_on_a_refusal(verifier_dir, tmp_path, capsys):
    good = write_research(tmp_path / "good", LLAMA3, research_tensors(LLAMA3, verifier_dir), True)
    bad = write_research(tmp_path / "bad", VICUNA, research_tensors(VICUNA, verifier_dir), False)
    args = ["--from", "eagle-research", "--verifier", str(verifier_dir), "--verifier-name", VERIFIER_NAME]
    assert main(["convert", str(good), *args, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "translated: fusion_bias: false" in printed and f"wrote {tmp_path / 'out'} (strict)" in printed
    assert main(["convert", str(bad), *args, "--out", str(tmp_path / "out2")]) == 1
    assert "supply --set fusion_bias=true|false [convert.undecidable]" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_the_speculators_post_embedding_layernorm_name_is_the_embedding_norm(verifier_dir, tmp_path):
    tensors = research_tensors(HASS, verifier_dir, fc_bias=True, norms=V1_NORMS)
    tensors["post_embedding_layernorm.weight"] = tensors.pop("embed_layernorm.weight")
    src = write_research(tmp_path / "src", HASS, tensors, False)
    out, _ = convert(src, verifier_dir, tmp_path / "out")
    stored = load_file(str(out / "model.safetensors"))
    assert torch.equal(stored["embedding_layernorm.weight"], tensors["post_embedding_layernorm.weight"])


def test_an_absent_layer_size_is_refused_naming_the_field_to_set(verifier_dir, tmp_path):
    cfg = {k: v for k, v in LLAMA3.items() if k != "intermediate_size"}
    src = write_research(tmp_path / "src", cfg, research_tensors(LLAMA3, verifier_dir), False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [
        ("/intermediate_size", "--set transformer_layer_config.intermediate_size=N")]


def test_a_hass_file_whose_hidden_layernorm_norms_the_feature_before_fc_is_refused_naming_why(verifier_dir, tmp_path,
                                                                                             capsys):
    # as its training saves it: float32 (the embedding loaded .float()), embed_tokens kept, fc without a bias
    tensors = {n: t.float() for n, t in research_tensors(RESEARCH_HASS, verifier_dir, norms=True, embed=True).items()}
    src = write_research(tmp_path / "src", RESEARCH_HASS, tensors, False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [
        ("/hidden_layernorm.weight", "no flag: no v1 eagle checkpoint computes this draft")]
    assert "before fc" in refused.value.refusals[0].message
    # why: v1 would apply the norm to fc's output, the research code applies it to the feature; the logits differ
    hf = HfLlama(verifier_dir)
    context = PROMPT + [hf.greedy(PROMPT)]
    as_v1 = {("layers.0.input_layernorm.weight" if n == "hidden_layernorm.weight" else n): t
             for n, t in tensors.items()}
    research, v1 = (eagle_chain(t, RESEARCH_HASS, hf, context, 1)[0] for t in (tensors, as_v1))
    assert float((research - v1).abs().max()) > 1e-2 * float(research.abs().max())
    # --set layernorms=false does not make it convertible: dropping the norm writes another function
    with pytest.raises(Refused):
        convert(src, verifier_dir, tmp_path / "out", {"layernorms": False})
    assert main(["convert", str(src), "--from", "eagle-research", "--verifier", str(verifier_dir),
                 "--verifier-name", VERIFIER_NAME, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "#/hidden_layernorm.weight" in err and not (tmp_path / "out").exists()


def test_a_stated_head_dim_is_kept_and_a_set_one_is_recorded_once(verifier_dir, tmp_path):
    src = write_research(tmp_path / "src", WIDE_HEADS, research_tensors(WIDE_HEADS, verifier_dir), False)
    out, conversion = convert(src, verifier_dir, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["transformer_layer_config"]["head_dim"] == 16
    assert not any(d.subject == "transformer_layer_config.head_dim" for d in conversion.decisions)
    unstated = {k: v for k, v in WIDE_HEADS.items() if k != "head_dim"}
    src = write_research(tmp_path / "unstated", unstated, research_tensors(WIDE_HEADS, verifier_dir), False)
    out, conversion = convert(src, verifier_dir, tmp_path / "out2", {"transformer_layer_config.head_dim": 16})
    assert [(d.kind, d.detail) for d in conversion.decisions if d.subject == "transformer_layer_config.head_dim"] == \
        [("given", "16 from --set")]
    assert max_logit_difference(out, verifier_dir, research_tensors(WIDE_HEADS, verifier_dir), WIDE_HEADS) < TOLERANCE


def test_a_head_dim_the_q_proj_rows_contradict_is_refused_naming_the_value_they_hold(verifier_dir, tmp_path):
    # SafeAILab cnets1.py ignores a stated head_dim: its q_proj has hidden_size rows whatever the config says
    src = write_research(tmp_path / "src", WIDE_HEADS, research_tensors(LLAMA3, verifier_dir), False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [
        ("/head_dim", "--set transformer_layer_config.head_dim=8")]
    out, _ = convert(src, verifier_dir, tmp_path / "out", {"transformer_layer_config.head_dim": 8})
    assert validate(out, "strict").findings == []


def test_every_pending_refusal_is_reported_in_one_run(verifier_dir, tmp_path, capsys):
    cfg = {k: v for k, v in dict(VICUNA, hidden_size=16).items() if k != "intermediate_size"}
    tensors = research_tensors(VICUNA, verifier_dir, qkv_bias=True, norms=V1_NORMS[:2])  # bias read true, no fc.bias
    src = write_research(tmp_path / "src", cfg, tensors, False)
    with pytest.raises(Refused) as refused:
        convert(src, verifier_dir, tmp_path / "out")
    assert sorted(r.pointer for r in refused.value.refusals) == ["", "/bias", "/hidden_size", "/intermediate_size",
                                                                 "/qkv_bias"]
    assert main(["convert", str(src), "--from", "eagle-research", "--verifier", str(verifier_dir),
                 "--verifier-name", VERIFIER_NAME, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.count("[convert.undecidable]") == 5


@pytest.mark.parametrize("key, value", [("hidden_size", "32"), ("num_attention_heads", 0), ("head_dim", True)])
def test_a_size_that_is_no_positive_integer_is_one_line_naming_config_json(verifier_dir, tmp_path, capsys, key, value):
    src = write_research(tmp_path / "src", dict(LLAMA3, **{key: value}), research_tensors(LLAMA3, verifier_dir), False)
    with pytest.raises(SourceError, match=f"config.json.*{key}"):
        convert(src, verifier_dir, tmp_path / "out")
    assert main(["convert", str(src), "--from", "eagle-research", "--verifier", str(verifier_dir),
                 "--verifier-name", VERIFIER_NAME, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
