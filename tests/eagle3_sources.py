"""EAGLE-3 drafts as SafeAILab's research code, SpecForge and the speculators repository's research code write them
(tiny random weights under the real tensor names, dtypes and config keys), and the research forward written out in
plain torch from the sources' documented math, for tests/test_convert_eagle3_research.py and
tests/test_convert_export.py.

The reference math reads the source tensors by their source names and the verifier's hidden states from Hugging
Face transformers; it shares no code with specfmt's runtime.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from builders import VERIFIER_CONFIG, write_verifier

N_VERIFIER = 8  # [2, N//2, N-3] = [2, 4, 5]: ascending (the 6-layer test verifier's fallback repeats 3)
VERIFIER = dict(VERIFIER_CONFIG, num_hidden_layers=N_VERIFIER)

# The keys of SafeAILab's EAGLE-3 draft config, as eagle/traineagle3/config.json writes it and
# yuhuili/EAGLE3-LLaMA3.1-Instruct-8B ships it (/work/shared/reference/other-formats.md §4.1), at tiny sizes.
SAFEAILAB = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
             "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 2048,
             "model_type": "llama", "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 1,
             "pad_token_id": 0, "rms_norm_eps": 1e-05, "tie_word_embeddings": False, "torch_dtype": "float16",
             "transformers_version": "4.28.1", "use_cache": True, "vocab_size": 128, "draft_vocab_size": 40}

# The keys of sgl-project/SpecForge configs/qwen3-4b-eagle3.json (LlamaForCausalLMEagle3, head_dim, rope_theta,
# tie_word_embeddings true, sliding-window keys) with the eagle_config block of configs/deepseek-v3-671b-eagle3.json.
SPECFORGE = {"architectures": ["LlamaForCausalLMEagle3"], "attention_bias": False, "attention_dropout": 0.0,
             "bos_token_id": 1, "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu", "hidden_size": 32,
             "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 4096,
             "max_window_layers": 36, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 1,
             "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
             "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
             "transformers_version": "4.51.0", "use_cache": True, "vocab_size": 128, "draft_vocab_size": 40,
             "eagle_config": {"eagle_aux_hidden_state_layer_ids": [1, 3, 5], "use_aux_hidden_state": True}}

# SpecForge configs/llama3-70B-ealge3.json (llama3 rope_scaling) with SpecForge's fc_norm and a draft wider than
# the verifier (target_hidden_size, read by cnets.py and SpecForge's LlamaForCausalLMEagle3).
SPECFORGE_WIDE = {"architectures": ["LlamaForCausalLMEagle3"], "bos_token_id": 1, "eos_token_id": [2, 3],
                  "head_dim": 8, "hidden_act": "silu", "hidden_size": 48, "initializer_range": 0.02,
                  "intermediate_size": 96, "max_position_embeddings": 4096, "model_type": "llama",
                  "num_attention_heads": 6, "num_key_value_heads": 2, "num_hidden_layers": 1, "pad_token_id": 0,
                  "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0,
                                                          "low_freq_factor": 1.0,
                                                          "original_max_position_embeddings": 64,
                                                          "rope_type": "llama3"},
                  "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "float16",
                  "transformers_version": "4.28.1", "use_cache": True, "vocab_size": 128, "draft_vocab_size": 40,
                  "target_hidden_size": 32, "fc_norm": True}


# The keys of vllm-project/speculators research/eagle3/train/llama3_8_B.json (before #177 removed the research tree):
# no eagle_config, no head_dim, llama3 rope_scaling, torch_dtype bfloat16, draft_vocab_size; sizes shrunk (and the
# scaling's original_max_position_embeddings, so that it bends the tiny positions too).
SPECULATORS_RESEARCH = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
                        "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
                        "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
                        "num_attention_heads": 4, "num_hidden_layers": 1, "num_key_value_heads": 2,
                        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
                        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 64, "rope_type": "llama3"},
                        "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                        "transformers_version": "4.42.3", "use_cache": True, "draft_vocab_size": 40, "vocab_size": 128}


def sizes(cfg: dict) -> dict:
    h, n_h = cfg["hidden_size"], cfg["num_attention_heads"]
    return {"H": h, "H_t": cfg.get("target_hidden_size", h), "n_h": n_h, "n_kv": cfg.get("num_key_value_heads", n_h),
            "d": cfg.get("head_dim", h // n_h), "I": cfg["intermediate_size"], "V": cfg["vocab_size"],
            "V_d": cfg.get("draft_vocab_size", cfg["vocab_size"])}


def source_tensors(cfg: dict, prefixes: list[str], embed: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the source names: `prefixes` names each draft layer ("midlayer." for SafeAILab's
    single layer, "midlayer.0.", "midlayer.1." for several)."""
    s, g = sizes(cfg), torch.Generator().manual_seed(seed)

    def rand(*shape, std=0.3):
        return torch.randn(*shape, generator=g) * std

    def norm(n):
        return 1 + rand(n, std=0.1)

    t = {"fc.weight": rand(s["H"], 3 * s["H_t"], std=0.2), "norm.weight": norm(s["H"]),
         "lm_head.weight": rand(s["V_d"], s["H"])}
    for i, p in enumerate(prefixes):
        width = 2 * s["H"] if i == 0 else s["H"]
        t |= {p + "self_attn.q_proj.weight": rand(s["n_h"] * s["d"], width),
              p + "self_attn.k_proj.weight": rand(s["n_kv"] * s["d"], width),
              p + "self_attn.v_proj.weight": rand(s["n_kv"] * s["d"], width),
              p + "self_attn.o_proj.weight": rand(s["H"], s["n_h"] * s["d"]),
              p + "mlp.gate_proj.weight": rand(s["I"], s["H"]), p + "mlp.up_proj.weight": rand(s["I"], s["H"]),
              p + "mlp.down_proj.weight": rand(s["H"], s["I"]), p + "input_layernorm.weight": norm(s["H"]),
              p + "post_attention_layernorm.weight": norm(s["H"])}
        if i == 0:
            t[p + "hidden_norm.weight"] = norm(s["H"])
    if embed:
        t["embed_tokens.weight"] = rand(s["V"], s["H"], std=1.0)
    if cfg.get("fc_norm"):
        t |= {f"fc_norm.{a}.weight": norm(s["H_t"]) for a in range(3)}
    if s["V_d"] < s["V"]:
        used = torch.sort(torch.randperm(s["V"], generator=g)[: s["V_d"]]).values
        t["d2t"] = used - torch.arange(s["V_d"])  # target id = draft id + d2t[draft id]
        t["t2d"] = torch.zeros(s["V"], dtype=torch.bool)
        t["t2d"][used] = True
    return t


def speculators_research_tensors(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state its research/eagle3 training saves, as its convert_checkpoint.py renames it (hidden_norm and the
    embedding's input_layernorm under layers.0., lm_head_layernorm as norm, d2t and t2d added): the Model's float32
    parameters, with fc built in bfloat16 and embed_tokens and lm_head loaded from the verifier in bfloat16."""
    t = source_tensors(cfg, ["layers.0."], seed=seed)
    return {n: v.to(torch.bfloat16) if n in ("fc.weight", "embed_tokens.weight", "lm_head.weight") else v
            for n, v in t.items()}


def write_source(path: Path, cfg: dict, tensors: dict, fmt: str = "safetensors") -> Path:
    """A source directory: config.json and model.safetensors, or pytorch_model.bin as the research code saves."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    if fmt == "bin":
        torch.save(tensors, path / "pytorch_model.bin")
    else:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "model.safetensors"))
    return path


def verifier_dir(tmp_path: Path) -> Path:
    return write_verifier(tmp_path / "verifier", config=VERIFIER)


def hf_hidden_states(verifier: Path, prompts: list[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """Hugging Face's hidden_states (float64) of each prompt: [k] is the input of decoder layer k for k < N."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(verifier, dtype=torch.float64).eval()
    with torch.no_grad():
        return [tuple(h[0] for h in model(p[None], output_hidden_states=True).hidden_states) for p in prompts]


# The research forward (other-formats.md §4.3, cnets.py L387-461 and L586-665), written out:
#   a = cat(h^(l1), h^(l2), h^(l3)); g = fc(a) (fc_norm: RMSNorm per aux chunk first, SpecForge)
#   u = cat(input_layernorm(E[x]), hidden_norm(g)); y = g + o_proj(Attn(u)); out = y + MLP(post_norm(y))
#   (speculators research/eagle3, modeling_llama_TTT_eagle3.py: the residual is the second half of u, hidden_norm(g))
#   further layers (midlayer.1, ...): plain pre-norm Llama layers over out
#   logits = lm_head(norm(out)); the next row reads out (pre-norm) and the token j + d2t[j]

def rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def inv_freq(cfg: dict) -> torch.Tensor:
    """RoPE frequencies, with Llama 3 scaling when rope_scaling says llama3 (SpecForge's LlamaRotaryEmbedding)."""
    d = sizes(cfg)["d"]
    f = 1.0 / (float(cfg.get("rope_theta", 10000.0)) ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    sc = cfg.get("rope_scaling")
    if not sc:
        return f
    orig, low, high = sc["original_max_position_embeddings"], sc["low_freq_factor"], sc["high_freq_factor"]
    wave = 2 * math.pi / f
    smooth = (orig / wave - low) / (high - low)
    mid = (1 - smooth) * f / sc["factor"] + smooth * f
    return torch.where(wave < orig / high, f, torch.where(wave > orig / low, f / sc["factor"], mid))


def rope(x: torch.Tensor, pos: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """x [T, heads, d] rotated by position (neox halves)."""
    angles = pos[:, None].double() * freq[None]  # [T, d/2]
    cos, sin = torch.cat([angles.cos()] * 2, -1)[:, None], torch.cat([angles.sin()] * 2, -1)[:, None]
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class ResearchDraft:
    """The source draft run row by row, its keys and values kept per layer."""

    def __init__(self, cfg: dict, src: dict, prefixes: list[str], embed: torch.Tensor,
                 residual_after_norm: bool = False):
        self.cfg, self.s, self.eps = cfg, sizes(cfg), cfg.get("rms_norm_eps", 1e-6)
        self.residual_after_norm = residual_after_norm
        self.w = {k: v.double() if v.is_floating_point() else v for k, v in src.items()}
        self.prefixes, self.embed, self.freq = prefixes, embed.double(), inv_freq(cfg)
        self.keys: list[list[torch.Tensor]] = [[] for _ in prefixes]
        self.values: list[list[torch.Tensor]] = [[] for _ in prefixes]

    def fc(self, aux: torch.Tensor) -> torch.Tensor:
        if self.cfg.get("fc_norm"):
            aux = torch.cat([rms(c, self.w[f"fc_norm.{a}.weight"], self.eps) for a, c in enumerate(aux.chunk(3, -1))],
                            -1)
        return aux @ self.w["fc.weight"].T

    def attention(self, i: int, u: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        p, s, t = self.prefixes[i], self.s, u.shape[0]
        q = rope((u @ self.w[p + "self_attn.q_proj.weight"].T).view(t, s["n_h"], s["d"]), pos, self.freq)
        k = rope((u @ self.w[p + "self_attn.k_proj.weight"].T).view(t, s["n_kv"], s["d"]), pos, self.freq)
        v = (u @ self.w[p + "self_attn.v_proj.weight"].T).view(t, s["n_kv"], s["d"])
        self.keys[i].append(k)
        self.values[i].append(v)
        keys, values = torch.cat(self.keys[i]), torch.cat(self.values[i])  # every row so far, this one included
        group = s["n_h"] // s["n_kv"]
        keys, values = keys.repeat_interleave(group, 1), values.repeat_interleave(group, 1)
        scores = torch.einsum("qhd,khd->hqk", q, keys) / math.sqrt(s["d"])
        past = keys.shape[0] - t
        visible = torch.arange(keys.shape[0])[None] <= (past + torch.arange(t))[:, None]
        probs = scores.masked_fill(~visible, float("-inf")).softmax(-1)
        o = torch.einsum("hqk,khd->qhd", probs, values).reshape(t, -1)
        return o @ self.w[p + "self_attn.o_proj.weight"].T

    def mlp(self, p: str, x: torch.Tensor) -> torch.Tensor:
        gate, up = x @ self.w[p + "mlp.gate_proj.weight"].T, x @ self.w[p + "mlp.up_proj.weight"].T
        return (torch.nn.functional.silu(gate) * up) @ self.w[p + "mlp.down_proj.weight"].T

    def rows(self, tokens: torch.Tensor, g: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits over the draft vocabulary, the pre-norm output fed back)."""
        p0 = self.prefixes[0]
        e = rms(self.embed[tokens], self.w[p0 + "input_layernorm.weight"], self.eps)
        gn = rms(g, self.w[p0 + "hidden_norm.weight"], self.eps)
        u = torch.cat([e, gn], -1)  # embedding first
        y = (gn if self.residual_after_norm else g) + self.attention(0, u, pos)
        out = y + self.mlp(p0, rms(y, self.w[p0 + "post_attention_layernorm.weight"], self.eps))
        for i, p in enumerate(self.prefixes[1:], 1):
            y = out + self.attention(i, rms(out, self.w[p + "input_layernorm.weight"], self.eps), pos)
            out = y + self.mlp(p, rms(y, self.w[p + "post_attention_layernorm.weight"], self.eps))
        return rms(out, self.w["norm.weight"], self.eps) @ self.w["lm_head.weight"].T, out

    def chain(self, tokens: list[int], aux: torch.Tensor, k: int) -> tuple[list[int], list[torch.Tensor]]:
        """k greedy proposals after `tokens` (the last one pending), with the logits each was picked from."""
        n = len(tokens) - 1
        logits, out = self.rows(torch.tensor(tokens[1:]), self.fc(aux), torch.arange(n))
        picked, rows = [], []
        for s in range(k):
            rows.append(logits[-1])
            j = int(logits[-1].argmax())
            picked.append(j + int(self.w["d2t"][j]) if "d2t" in self.w else j)
            if s + 1 < k:
                logits, out = self.rows(torch.tensor(picked[-1:]), out[-1:], torch.tensor([n + s]))
        return picked, rows


def source_aux(hidden: tuple[torch.Tensor, ...], inputs_of: list[int]) -> torch.Tensor:
    """The aux concatenation of the verifier layers' inputs `inputs_of` ([T, 3*H_t])."""
    return torch.cat([hidden[k] for k in inputs_of], -1)
