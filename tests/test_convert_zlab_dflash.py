"""specfmt convert --from zlab-dflash: z-lab DFlash drafts become strict dflash checkpoints whose block logits equal
z-lab's math, computed here from the source tensors; what v1 cannot express is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from builders import VERIFIER_CONFIG, write_verifier
from native_source_math import attend, heads, mlp, rms, rope
from specfmt import validate
from specfmt.convert import converter, write
from specfmt.convert.common import Refused, read_source, verifier_facts
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.verifier import Verifier

N = VERIFIER_CONFIG["num_hidden_layers"]  # 6
TOLERANCE = 1e-5  # float64 on both sides; the runtime's recorded logits are rounded to float32

# The keys of z-lab/Qwen3-8B-DFlash-b16's config.json, as the speculators DFlash converter's test fixture records
# them (tests/unit/convert/test_dflash_converter.py, _source_config: architectures, auto_map, block_size,
# num_target_layers, dflash_config {mask_token_id, target_layer_ids}) with the Qwen3-8B keys z-lab's Qwen3Config
# carries; sizes shrunk to the tiny verifier (H 32, V 128, N 6). z-lab's ids [1, 9, 17, 25, 33] of N 36 become
# [0, 2, 4] here, below N - 1 as z-lab's build_target_layer_ids keeps them.
ZLAB_CONFIG = {
    "architectures": ["DFlashDraftModel"], "auto_map": {"AutoModel": "dflash.DFlashDraftModel"},
    "block_size": 4, "num_target_layers": N,
    "dflash_config": {"mask_token_id": 120, "target_layer_ids": [0, 2, 4]},
    "model_type": "qwen3", "vocab_size": 128, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "max_position_embeddings": 512, "attention_bias": False, "attention_dropout": 0.0,
    "hidden_act": "silu", "initializer_range": 0.02, "layer_types": ["full_attention", "full_attention"],
    "max_window_layers": 2, "sliding_window": None, "use_sliding_window": False, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "bos_token_id": 1, "eos_token_id": 2,
}


def zlab_tensors(cfg: dict, seed: int = 0, fused: bool = False) -> dict[str, torch.Tensor]:
    """Random bfloat16 weights under z-lab's names: layers.{i}.*, fc (A*H wide), hidden_norm, norm."""
    g = torch.Generator().manual_seed(seed)
    h, d, nh, nkv, i = (cfg[k] for k in ("hidden_size", "head_dim", "num_attention_heads", "num_key_value_heads",
                                         "intermediate_size"))

    def rand(*shape, norm=False):
        t = torch.randn(shape, generator=g) * (0.1 if norm else 0.3)
        return (1 + t if norm else t).to(torch.bfloat16)

    a = len(cfg["dflash_config"]["target_layer_ids"])
    out = {"fc.weight": rand(h, a * h), "hidden_norm.weight": rand(h, norm=True), "norm.weight": rand(h, norm=True)}
    for n in range(cfg["num_hidden_layers"]):
        p = f"layers.{n}."
        q, k, v = rand(nh * d, h), rand(nkv * d, h), rand(nkv * d, h)
        out.update({p + "input_layernorm.weight": rand(h, norm=True), p + "post_attention_layernorm.weight":
                    rand(h, norm=True), p + "self_attn.q_norm.weight": rand(d, norm=True),
                    p + "self_attn.k_norm.weight": rand(d, norm=True), p + "self_attn.o_proj.weight": rand(h, nh * d),
                    p + "mlp.gate_proj.weight": rand(i, h), p + "mlp.up_proj.weight": rand(i, h),
                    p + "mlp.down_proj.weight": rand(h, i)})
        if fused:  # Laguna-style drafts store one qkv_proj
            out[p + "self_attn.qkv_proj.weight"] = torch.cat([q, k, v])
        else:
            out.update({p + "self_attn.q_proj.weight": q, p + "self_attn.k_proj.weight": k,
                        p + "self_attn.v_proj.weight": v})
    return out


def write_zlab(path: Path, cfg: dict | None = None, tensors: dict | None = None) -> Path:
    cfg = cfg or ZLAB_CONFIG
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(tensors if tensors is not None else zlab_tensors(cfg), str(path / "model.safetensors"))
    return path


@pytest.fixture(scope="module")
def verifier_dir(tmp_path_factory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("verifier") / "llama", scale=5.0)


def converted(source: Path, verifier_dir: Path, out: Path, given: dict | None = None) -> Path:
    facts = verifier_facts(str(verifier_dir), "org/verifier")
    conversion = converter("zlab-dflash")(read_source(source), facts, given or {})
    return write(conversion, out, "specfmt convert", "zlab-dflash", str(source), argv=[])


def zlab_block_logits(cfg: dict, w: dict, states: list[torch.Tensor], pending: int, embed: torch.Tensor,
                      lm_head: torch.Tensor) -> torch.Tensor:
    """z-lab's DFlash block pass: context = hidden_norm(fc(cat(hidden_states[id + 1]))), block [x_n, m, ..., m] at
    positions n..n+B-1, each layer's keys and values over [context | block], attention non-causal; logits of slots
    1..B-1 through the verifier's LM head. `states` is Hugging Face's hidden_states tuple over the prompt."""
    w = {k: t.double() for k, t in w.items()}
    eps, nh, nkv, b = cfg["rms_norm_eps"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["block_size"]
    c = torch.cat([states[i + 1] for i in cfg["dflash_config"]["target_layer_ids"]], -1)  # [n, A*H]
    c = rms(c @ w["fc.weight"].T, w["hidden_norm.weight"], eps)  # [n, A*H] -> [n, H]
    n = len(c)
    e = embed[torch.tensor([pending] + [cfg["dflash_config"]["mask_token_id"]] * (b - 1))]  # [B, H]
    kpos, qpos = torch.arange(n + b), torch.arange(n, n + b)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"layers.{layer}."
        u = rms(e, w[p + "input_layernorm.weight"], eps)
        q = rms(heads(u @ w[p + "self_attn.q_proj.weight"].T, nh), w[p + "self_attn.q_norm.weight"], eps)
        kv_in = torch.cat([c, u])  # [n+B, H]: the context enters every layer's k_proj and v_proj un-normed
        k = rms(heads(kv_in @ w[p + "self_attn.k_proj.weight"].T, nkv), w[p + "self_attn.k_norm.weight"], eps)
        v = heads(kv_in @ w[p + "self_attn.v_proj.weight"].T, nkv)
        o = attend(rope(q, qpos, cfg["rope_theta"]), rope(k, kpos, cfg["rope_theta"]), v,
                   torch.ones(b, n + b, dtype=torch.bool))
        e = e + o @ w[p + "self_attn.o_proj.weight"].T
        e = e + mlp(rms(e, w[p + "post_attention_layernorm.weight"], eps), w, p)
    return rms(e, w["norm.weight"], eps)[1:] @ lm_head.T  # [B-1, V]


def test_a_zlab_draft_converts_to_strict_and_its_block_logits_equal_zlabs_math(tmp_path, verifier_dir):
    source = write_zlab(tmp_path / "zlab")
    out = converted(source, verifier_dir, tmp_path / "out")
    assert validate(out, "strict").findings == []
    config = json.loads((out / "config.json").read_text())
    assert config["aux_hidden_state_layer_ids"] == [1, 3, 5]
    assert config["speculators_config"]["proposal_methods"][0]["speculative_tokens"] == 3
    assert (config["dtype"], config["draft_vocab_size"], config["mask_token_id"]) == ("bfloat16", 128, 120)
    verifier = Verifier.from_pretrained(verifier_dir, dtype=torch.float64)
    draft, _ = load_draft(out, verifier)
    tokens = torch.tensor([3, 17, 42, 9, 77, 5, 64])
    every = verifier.forward(tokens, tuple(range(N + 1)))  # aux = the residual stream entering each layer 0..N
    states = list(every.aux.split(32, -1))[:N] + [every.normed]  # Hugging Face hidden_states: the last one normed
    pending = int(every.logits[-1].argmax())
    verifier.truncate(0)
    ours = verifier.forward(tokens, draft.aux_ids)
    recorder = RecordingPicker()
    draft.propose(Context(tokens.tolist() + [pending], ours.aux, ours.last, ours.normed), 3, recorder)
    expected = zlab_block_logits(ZLAB_CONFIG, zlab_tensors(ZLAB_CONFIG), states, pending, verifier.embed_tokens,
                                 verifier.lm_head)
    difference = (torch.stack(recorder.logits).double() - expected).abs().max().item()
    assert difference < TOLERANCE * expected.abs().max().item(), difference
    other = zlab_block_logits(dict(ZLAB_CONFIG, dflash_config={"mask_token_id": 120, "target_layer_ids": [1, 2, 4]}),
                              zlab_tensors(ZLAB_CONFIG), states, pending, verifier.embed_tokens, verifier.lm_head)
    assert (other - expected).abs().max() > 100 * difference  # the comparison sees an off-by-one layer id


def test_a_fused_qkv_proj_is_split_by_rows_into_the_same_tensors(tmp_path, verifier_dir):
    plain = converted(write_zlab(tmp_path / "plain"), verifier_dir, tmp_path / "a")
    fused = converted(write_zlab(tmp_path / "fused", tensors=zlab_tensors(ZLAB_CONFIG, fused=True)), verifier_dir,
                      tmp_path / "b")
    a, b = read_source(plain).tensors, read_source(fused).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    decisions = json.loads((fused / "config.json").read_text())["specfmt_provenance"]["conversion"]["decisions"]
    assert ("computed", "layers.*.self_attn.qkv_proj") in {(d["kind"], d["subject"]) for d in decisions}


def test_the_block_size_of_a_later_draft_is_read_from_dflash_config(tmp_path, verifier_dir):
    cfg = dict(ZLAB_CONFIG, dflash_config=dict(ZLAB_CONFIG["dflash_config"], block_size=8))
    del cfg["block_size"]
    out = converted(write_zlab(tmp_path / "zlab", cfg), verifier_dir, tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert (config["block_size"], config["speculators_config"]["proposal_methods"][0]["speculative_tokens"]) == (8, 7)


def test_an_absent_block_size_is_refused_naming_its_flag_and_converts_once_set(tmp_path, verifier_dir):
    cfg = {k: v for k, v in ZLAB_CONFIG.items() if k != "block_size"}
    source = write_zlab(tmp_path / "zlab", cfg)
    with pytest.raises(Refused) as refused:
        converted(source, verifier_dir, tmp_path / "out")
    assert [(r.pointer, r.flag) for r in refused.value.refusals] == [("/block_size", "--set block_size=B")]
    out = converted(source, verifier_dir, tmp_path / "out", {"block_size": 4})
    assert json.loads((out / "config.json").read_text())["block_size"] == 4


def test_a_layer_id_that_reads_the_normed_last_state_is_refused(tmp_path, verifier_dir):
    cfg = dict(ZLAB_CONFIG, dflash_config={"mask_token_id": 120, "target_layer_ids": [0, 2, N - 1]})
    with pytest.raises(Refused) as refused:
        converted(write_zlab(tmp_path / "zlab", cfg), verifier_dir, tmp_path / "out")
    (refusal,) = refused.value.refusals
    assert (refusal.pointer, refusal.code) == ("/dflash_config/target_layer_ids", "convert.unsupported")
    assert not (tmp_path / "out").exists()


def test_tensors_v1_dflash_cannot_compute_are_refused_each_by_name(tmp_path, verifier_dir):
    tensors = zlab_tensors(ZLAB_CONFIG)
    tensors["layers.0.self_attn.g_proj.weight"] = torch.zeros(32, 32, dtype=torch.bfloat16)
    tensors["aux_hidden_norms.0.weight"] = torch.ones(32, dtype=torch.bfloat16)
    with pytest.raises(Refused) as refused:
        converted(write_zlab(tmp_path / "zlab", tensors=tensors), verifier_dir, tmp_path / "out")
    assert sorted(r.file for r in refused.value.refusals) == ["aux_hidden_norms.0.weight",
                                                              "layers.0.self_attn.g_proj.weight"]


def test_a_draft_for_a_verifier_of_another_depth_is_refused_naming_the_verifier_flag(tmp_path, verifier_dir):
    with pytest.raises(Refused) as refused:
        converted(write_zlab(tmp_path / "zlab", dict(ZLAB_CONFIG, num_target_layers=36)), verifier_dir,
                  tmp_path / "out")
    assert [r.pointer for r in refused.value.refusals] == ["/num_target_layers"]


def test_specfmt_convert_prints_each_decision_and_records_it_in_the_provenance(tmp_path, verifier_dir):
    source = write_zlab(tmp_path / "zlab")
    done = subprocess.run([sys.executable, "-m", "specfmt", "convert", str(source), "--from", "zlab-dflash",
                           "--verifier", str(verifier_dir), "--verifier-name", "org/verifier", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "translated: aux_hidden_state_layer_ids" in done.stdout and "dropped: auto_map" in done.stdout
    provenance = json.loads((tmp_path / "out" / "config.json").read_text())["specfmt_provenance"]
    printed = [line for line in done.stdout.splitlines() if not line.startswith("wrote ")]
    assert printed == [f"{d['kind']}: {d['subject']}: {d['detail']}" for d in provenance["conversion"]["decisions"]]
    assert provenance["conversion"]["format"] == "zlab-dflash"


def test_every_refusal_comes_in_one_run_as_one_line_each(tmp_path, verifier_dir, capsys):
    from specfmt.cli import main

    source = write_zlab(tmp_path / "zlab", {k: v for k, v in ZLAB_CONFIG.items() if k != "block_size"})
    code = main(["convert", str(source), "--from", "zlab-dflash", "--verifier", str(verifier_dir), "--out",
                 str(tmp_path / "out")])  # no block size, and no --verifier-name for a local verifier
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line.split("#", 1)[1].split(": ")[0] for line in err.splitlines()] == [
        "/block_size", "/speculators_config/verifier"]


def test_a_verifier_of_another_width_is_named_with_its_flag_not_left_as_a_bare_shape_error(tmp_path, capsys):
    from specfmt.cli import main

    wide = write_verifier(tmp_path / "wide", config=dict(VERIFIER_CONFIG, hidden_size=64, intermediate_size=128))
    code = main(["convert", str(write_zlab(tmp_path / "zlab")), "--from", "zlab-dflash", "--verifier", str(wide),
                 "--verifier-name", "org/wide", "--out", str(tmp_path / "out")])
    last = capsys.readouterr().err.splitlines()[-1]
    assert code == 1 and "--verifier's facts (hidden_size 64" in last and "supply --verifier PATH" in last
