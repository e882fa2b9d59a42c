"""specfmt convert --from mtp: the native MTP layer of a verifier checkpoint (MiMo, DeepSeek-V3 and Qwen3-Next names)
becomes a strict mtp draft whose logits equal the family's MTP formula computed here from the source tensors, on the
verifier state the layer was trained on (after the final norm: verifier_hidden_state post_norm)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from builders import VERIFIER_CONFIG
from conformance.generators.variants import verifier_for
from native_source_math import dense_layer, rms
from specfmt import validate
from specfmt.convert import converter, write
from specfmt.convert.common import Refused, verifier_facts
from specfmt.convert.mtp import read_source
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.verifier import Verifier

N, H = VERIFIER_CONFIG["num_hidden_layers"], VERIFIER_CONFIG["hidden_size"]
TOLERANCE = 1e-5  # relative to the largest logit: float64 on both sides, the recorded logits rounded to float32

# The keys of XiaomiMiMo/MiMo-7B-Base's config.json (a Qwen2 config with model_type "mimo", MiMoForCausalLM,
# num_nextn_predict_layers 1, rope_theta 640000, rms_norm_eps 1e-5), sizes shrunk to the tiny verifier.
MIMO_CONFIG = {
    "architectures": ["MiMoForCausalLM"], "auto_map": {"AutoConfig": "configuration_mimo.MiMoConfig",
                                                       "AutoModel": "modeling_mimo.MiMoModel",
                                                       "AutoModelForCausalLM": "modeling_mimo.MiMoForCausalLM"},
    "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": H,
    "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 512, "max_window_layers": N,
    "model_type": "mimo", "num_attention_heads": 4, "num_hidden_layers": N, "num_key_value_heads": 2,
    "num_nextn_predict_layers": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 640000,
    "sliding_window": 512, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 128,
}
# DeepSeek-V3's MTP names and count key (deepseek-ai/DeepSeek-V3 README_WEIGHTS.md: model.layers.{N+i}.enorm, hnorm,
# eh_proj, shared_head.{norm,head}, embed_tokens; num_nextn_predict_layers 1) with a dense llama layer, since v1 runs
# no MLA or MoE layer; Qwen3-Next's names (mtp.fc, pre_fc_norm_embedding, pre_fc_norm_hidden, norm, layers.0.*,
# zero-centred norms) with a dense qwen3 layer, for the same reason.
DEEPSEEK_DENSE = dict(VERIFIER_CONFIG, num_nextn_predict_layers=1)
QWEN3_DENSE = dict(VERIFIER_CONFIG, model_type="qwen3", attention_bias=False, architectures=["Qwen3ForCausalLM"],
                   num_nextn_predict_layers=1)
# deepseek-ai/DeepSeek-V3 config.json: MLA (kv_lora_rank, q_lora_rank) and MoE (n_routed_experts) keys.
DEEPSEEK_V3 = dict(VERIFIER_CONFIG, model_type="deepseek_v3", architectures=["DeepseekV3ForCausalLM"],
                   kv_lora_rank=512, q_lora_rank=1536, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
                   n_routed_experts=256, n_shared_experts=1, num_experts_per_tok=8, moe_intermediate_size=2048,
                   first_k_dense_replace=3, num_nextn_predict_layers=1)

FAMILIES = {  # family -> (source config, runtime verifier config, MTP tensor names, cat order, zero-centred)
    "mimo": (MIMO_CONFIG, dict({k: v for k, v in MIMO_CONFIG.items() if k not in ("auto_map",
                                                                                  "num_nextn_predict_layers")},
                                model_type="qwen2", architectures=["Qwen2ForCausalLM"]),
             {"enorm": "model.mtp_layers.0.token_layernorm", "hnorm": "model.mtp_layers.0.hidden_layernorm",
              "proj": "model.mtp_layers.0.input_proj", "final": "model.mtp_layers.0.final_layernorm",
              "layer": "model.mtp_layers.0."}, "hidden_first", False),
    "deepseek": (DEEPSEEK_DENSE, VERIFIER_CONFIG,
                 {"enorm": f"model.layers.{N}.enorm", "hnorm": f"model.layers.{N}.hnorm",
                  "proj": f"model.layers.{N}.eh_proj", "final": f"model.layers.{N}.shared_head.norm",
                  "layer": f"model.layers.{N}."}, "embedding_first", False),
    "qwen3_next": (QWEN3_DENSE, {k: v for k, v in QWEN3_DENSE.items() if k != "num_nextn_predict_layers"},
                   {"enorm": "mtp.pre_fc_norm_embedding", "hnorm": "mtp.pre_fc_norm_hidden", "proj": "mtp.fc",
                    "final": "mtp.norm", "layer": "mtp.layers.0."}, "embedding_first", True),
}


def mtp_tensors(family: str, cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random bfloat16 MTP weights under the family's names; zero-centred norms hold w with scale 1 + w."""
    _, _, names, _, zero_centred = FAMILIES[family]
    g = torch.Generator().manual_seed(seed)
    d, nh, nkv, i = H // cfg["num_attention_heads"], cfg["num_attention_heads"], cfg["num_key_value_heads"], 64

    def rand(*shape, norm=False):
        t = torch.randn(shape, generator=g) * (0.1 if norm else 0.3)
        return (t if zero_centred or not norm else 1 + t).to(torch.bfloat16)

    p = names["layer"]
    out = {names["enorm"] + ".weight": rand(H, norm=True), names["hnorm"] + ".weight": rand(H, norm=True),
           names["proj"] + ".weight": rand(H, 2 * H), names["final"] + ".weight": rand(H, norm=True),
           p + "input_layernorm.weight": rand(H, norm=True), p + "post_attention_layernorm.weight": rand(H, norm=True),
           p + "self_attn.q_proj.weight": rand(nh * d, H), p + "self_attn.k_proj.weight": rand(nkv * d, H),
           p + "self_attn.v_proj.weight": rand(nkv * d, H), p + "self_attn.o_proj.weight": rand(H, nh * d),
           p + "mlp.gate_proj.weight": rand(i, H), p + "mlp.up_proj.weight": rand(i, H),
           p + "mlp.down_proj.weight": rand(H, i)}
    if cfg["model_type"] in ("mimo", "qwen2"):  # Qwen2 layers carry q/k/v biases
        out.update({p + f"self_attn.{x}_proj.bias": rand(n * d) for x, n in (("q", nh), ("k", nkv), ("v", nkv))})
    if cfg["model_type"] == "qwen3":
        out.update({p + f"self_attn.{x}_norm.weight": rand(d, norm=True) for x in "qk"})
    return out


def write_source(path: Path, verifier_dir: Path, config: dict, mtp: dict, verifier_shard: bytes | None = None) -> Path:
    """A sharded verifier checkpoint: shard 1 the verifier's weights (or `verifier_shard`'s bytes), shard 2 the MTP
    layer, and model.safetensors.index.json mapping each name to its shard."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    with safe_open(str(verifier_dir / "model.safetensors"), "pt") as handle:
        verifier_names = list(handle.keys())
    data = verifier_shard if verifier_shard is not None else (verifier_dir / "model.safetensors").read_bytes()
    (path / first).write_bytes(data)
    save_file(mtp, str(path / second))
    weight_map = {**dict.fromkeys(verifier_names, first), **dict.fromkeys(mtp, second)}
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path


def write_hf_verifier(path: Path, config: dict) -> Path:
    """The tiny random verifier of the conformance variants as a Hugging Face directory, biases and q/k norms
    included (a qwen2 or qwen3 verifier)."""
    verifier = verifier_for(0, scale=5.0, config=config)
    tensors = {"model.embed_tokens.weight": verifier.w["embed_tokens"], "model.norm.weight": verifier.w["norm"],
               "lm_head.weight": verifier.w["lm_head"]}
    for i, layer in verifier.w["layer"].items():
        for role, t in layer.items():
            kind, _, bias = role.partition("_bias")
            where = "mlp" if kind.endswith(("gate_proj", "up_proj", "down_proj")) else "self_attn"
            name = f"{kind}.weight" if kind.endswith("layernorm") else f"{where}.{kind}.{'bias' if _ else 'weight'}"
            tensors[f"model.layers.{i}.{name}"] = t.contiguous()
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file(tensors, str(path / "model.safetensors"))
    return path


@pytest.fixture(scope="module")
def verifiers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verifiers")
    return {family: write_hf_verifier(root / family, FAMILIES[family][1]) for family in FAMILIES}


def source_for(family: str, tmp_path: Path, verifiers: dict, config: dict | None = None, **kw) -> Path:
    source_cfg = config or FAMILIES[family][0]
    mtp = kw.pop("mtp", None) or mtp_tensors(family, source_cfg)
    if family == "deepseek":  # DeepSeek-V3 stores copies of the verifier's embedding and LM head in its MTP layer
        with safe_open(str(verifiers[family] / "model.safetensors"), "pt") as handle:
            mtp[f"model.layers.{N}.embed_tokens.weight"] = handle.get_tensor("model.embed_tokens.weight")
            mtp[f"model.layers.{N}.shared_head.head.weight"] = handle.get_tensor("lm_head.weight")
    shard = b"shard 1 is never read" if family == "mimo" else None  # MiMo's source proves it
    return write_source(tmp_path / "source", verifiers[family], source_cfg, mtp, kw.pop("verifier_shard", shard))


def converted(family: str, source: Path, verifiers: dict, out: Path, given: dict | None = None) -> Path:
    facts = verifier_facts(str(verifiers[family]), "org/verifier")
    conversion = converter("mtp")(read_source(source), facts, given or {})
    return write(conversion, out, "specfmt convert", "mtp", str(source), argv=[])


def mtp_chain_logits(family: str, w: dict, cfg: dict, states: torch.Tensor, x: list[int], embed: torch.Tensor,
                     lm_head: torch.Tensor, k: int) -> torch.Tensor:
    """The family's MTP formula (other-formats.md 7.2, 7.3; MiMo's MiMoMTPLayers): row t reads state t and the
    embedding of x[t+1], u = proj(cat(norms)), one decoder layer, o = final_norm(...), logits = lm_head(o); each
    proposal's row then reads the token picked and the o before it. Returns the k rows the proposals come from."""
    _, _, names, order, zero_centred = FAMILIES[family]
    w, eps = {key: t.double() for key, t in w.items()}, cfg["rms_norm_eps"]
    n = len(x) - 1
    tokens, inputs, positions, picked = list(x[1:]), list(states[:n]), list(range(n)), []
    for _ in range(k):
        e = rms(embed[torch.tensor(tokens)], w[names["enorm"] + ".weight"], eps, zero_centred)
        h = rms(torch.stack(inputs), w[names["hnorm"] + ".weight"], eps, zero_centred)
        u = torch.cat([h, e] if order == "hidden_first" else [e, h], -1) @ w[names["proj"] + ".weight"].T
        o = rms(dense_layer(u, w, names["layer"], cfg, torch.tensor(positions), zero_centred),
                w[names["final"] + ".weight"], eps, zero_centred)
        logits = o[-1] @ lm_head.T
        picked.append(logits)
        tokens, inputs, positions = tokens + [int(logits.argmax())], inputs + [o[-1]], positions + [positions[-1] + 1]
    return torch.stack(picked)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_mtp_family_converts_to_strict_and_its_logits_equal_the_family_formula(family, tmp_path, verifiers):
    source = source_for(family, tmp_path, verifiers)
    out = converted(family, source, verifiers, tmp_path / "out")
    assert validate(out, "strict").findings == []
    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        assert all(name.startswith("mtp_layers.0.") for name in handle.keys())  # no verifier_lm_head, NaN or not
    verifier = Verifier.from_pretrained(verifiers[family], dtype=torch.float64)
    draft, config = load_draft(out, verifier)
    assert config["dtype"] == ("float32" if FAMILIES[family][4] else "bfloat16")
    prompt = torch.tensor([3, 17, 42, 9, 77, 5, 64])
    states = verifier.forward(prompt)
    x = prompt.tolist() + [int(states.logits[-1].argmax())]
    recorder = RecordingPicker()
    draft.propose(Context(x, states.aux, states.last, states.normed), 3, recorder)
    source_cfg, w = dict(FAMILIES[family][0], head_dim=H // 4), read_source(source).tensors
    expected = mtp_chain_logits(family, w, source_cfg, states.normed, x, verifier.embed_tokens, verifier.lm_head, 3)
    difference = (torch.stack(recorder.logits).double() - expected).abs().max().item()
    assert difference < TOLERANCE * expected.abs().max().item(), difference
    on_pre_norm = mtp_chain_logits(family, w, source_cfg, states.last, x, verifier.embed_tokens, verifier.lm_head, 1)
    assert (on_pre_norm[0] - expected[0]).abs().max() > 100 * difference  # the state the layer reads matters


def test_the_draft_states_post_norm_and_a_set_pre_norm_feeds_it_the_state_before_the_final_norm(tmp_path, verifiers):
    source = source_for("deepseek", tmp_path, verifiers)
    config = json.loads((converted("deepseek", source, verifiers, tmp_path / "post") / "config.json").read_text())
    assert config["verifier_hidden_state"] == "post_norm"
    assert ("default", "verifier_hidden_state") in {
        (d["kind"], d["subject"]) for d in config["specfmt_provenance"]["conversion"]["decisions"]}
    out = converted("deepseek", source, verifiers, tmp_path / "pre", given={"verifier_hidden_state": "pre_norm"})
    decisions = json.loads((out / "config.json").read_text())["specfmt_provenance"]["conversion"]["decisions"]
    assert [d["kind"] for d in decisions if d["subject"] == "verifier_hidden_state"] == ["given"]
    verifier = Verifier.from_pretrained(verifiers["deepseek"], dtype=torch.float64)
    draft, config = load_draft(out, verifier)
    assert config["verifier_hidden_state"] == "pre_norm"
    prompt = torch.tensor([5, 8, 13, 21, 34])
    states = verifier.forward(prompt)
    x = prompt.tolist() + [int(states.logits[-1].argmax())]
    recorder = RecordingPicker()
    draft.propose(Context(x, states.aux, states.last, states.normed), 2, recorder)
    expected = mtp_chain_logits("deepseek", read_source(source).tensors, dict(DEEPSEEK_DENSE, head_dim=H // 4),
                                states.last, x, verifier.embed_tokens, verifier.lm_head, 2)
    assert (torch.stack(recorder.logits).double() - expected).abs().max() < TOLERANCE * expected.abs().max()


@pytest.mark.parametrize("config", [DEEPSEEK_V3, dict(QWEN3_DENSE, model_type="qwen3_next", num_experts=512,
                                                      attn_output_gate=True, linear_num_value_heads=32)],
                         ids=["deepseek_v3", "qwen3_next"])
def test_mla_and_mixture_of_experts_layers_are_refused_by_name(config, tmp_path, verifiers):
    family = "deepseek" if config["model_type"] == "deepseek_v3" else "qwen3_next"
    source = source_for(family, tmp_path, verifiers, config=config, mtp=mtp_tensors(family, QWEN3_DENSE if
                                                                                    family == "qwen3_next" else config))
    with pytest.raises(Refused) as refused:
        converted(family, source, verifiers, tmp_path / "out")
    (refusal,) = [r for r in refused.value.refusals if r.code == "convert.unsupported"]
    assert refusal.pointer == "/model_type"
    wanted = ("MLA attention", "mixture-of-experts") if family == "deepseek" else ("mixture-of-experts", "gated")
    assert all(word in refusal.message for word in wanted), refusal.message


def test_a_second_mtp_layer_is_refused_until_one_layer_is_asked_for(tmp_path, verifiers):
    cfg = dict(MIMO_CONFIG, num_nextn_predict_layers=2)
    mtp = mtp_tensors("mimo", cfg)
    mtp.update({k.replace("mtp_layers.0.", "mtp_layers.1."): t for k, t in mtp_tensors("mimo", cfg, seed=1).items()})
    source = source_for("mimo", tmp_path, verifiers, config=cfg, mtp=mtp)
    with pytest.raises(Refused) as refused:
        converted("mimo", source, verifiers, tmp_path / "out")
    assert [(r.pointer, r.flag.split(" ")[1]) for r in refused.value.refusals] == [
        ("/num_nextn_predict_layers", "num_nextn_predict_layers=1")]
    out = converted("mimo", source, verifiers, tmp_path / "out", {"num_nextn_predict_layers": 1})
    decisions = json.loads((out / "config.json").read_text())["specfmt_provenance"]["conversion"]["decisions"]
    assert ("dropped", "MTP layers after the first") in {(d["kind"], d["subject"]) for d in decisions}


def test_a_deepseek_head_copy_that_differs_from_the_verifiers_lm_head_is_refused(tmp_path, verifiers):
    source = source_for("deepseek", tmp_path, verifiers)
    mtp_file = source / "model-00002-of-00002.safetensors"
    with safe_open(str(mtp_file), "pt") as handle:
        mtp = {k: handle.get_tensor(k) for k in handle.keys()}
    mtp[f"model.layers.{N}.shared_head.head.weight"] = mtp[f"model.layers.{N}.shared_head.head.weight"] * 2
    save_file(mtp, str(mtp_file))
    with pytest.raises(Refused) as refused:
        converted("deepseek", source, verifiers, tmp_path / "out")
    assert [r.file.split("#")[1] for r in refused.value.refusals] == [f"model.layers.{N}.shared_head.head.weight"]


def test_specfmt_convert_reads_the_mtp_shard_and_prints_its_decisions(tmp_path, verifiers):
    source = source_for("mimo", tmp_path, verifiers)
    done = subprocess.run([sys.executable, "-m", "specfmt", "convert", str(source), "--from", "mtp", "--verifier",
                           str(verifiers["mimo"]), "--verifier-name", "XiaomiMiMo/MiMo-7B-Base", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "computed: mtp_layers.0.input_proj.weight" in done.stdout
    assert "translated: transformer_layer_config.model_type: mimo -> qwen2" in done.stdout
    assert "default: verifier_hidden_state: post_norm" in done.stdout
    refused = subprocess.run([sys.executable, "-m", "specfmt", "convert", str(source), "--from", "mtp", "--verifier",
                              str(verifiers["mimo"]), "--verifier-name", "XiaomiMiMo/MiMo-7B-Base", "--set",
                              "verifier_hidden_state=normed", "--out", str(tmp_path / "refused")], capture_output=True,
                             text=True)
    assert refused.returncode == 1 and "verifier_hidden_state" in refused.stderr, refused.stderr


def test_every_refusal_comes_in_one_run_as_one_line_each(tmp_path, verifiers, capsys):
    from specfmt.cli import main

    cfg = dict(MIMO_CONFIG, num_nextn_predict_layers=2)
    source = source_for("mimo", tmp_path, verifiers, config=cfg)
    code = main(["convert", str(source), "--from", "mtp", "--verifier", str(verifiers["mimo"]), "--out",
                 str(tmp_path / "out"), "--set", "verifier_hidden_state=after"])  # 2 layers, no name, a bad value
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line.split("#", 1)[1].split(": ")[0] for line in err.splitlines()] == [
        "/num_nextn_predict_layers", "/speculators_config/verifier", "/verifier_hidden_state"]
