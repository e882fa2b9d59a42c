"""Checkpoints for the vLLM tier, written at test time by specfmt's own strict `save`.

vLLM's CPU attention accepts head_dim 32 and up, so these are larger than the builders' variants:
a 6-layer llama verifier (H 128, 4 heads of 32, V 256) and 1- or 2-layer drafts of the same width.
Weights are N(0, std) with norm weights near 1, so that logits are O(1) and top-2 margins wide.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from builders import envelope, write_verifier
from specfmt import save
from specfmt.defaults import resolve
from specfmt.generate import generate
from specfmt.nn import KVCache
from specfmt.proposal import Proposal
from specfmt.synthetic import random_tensors
from specfmt.verifier import Verifier

H, V, V_D, HEADS, KV_HEADS, HEAD_DIM, N_VERIFIER, K = 128, 256, 96, 4, 2, 32, 6, 3
PROMPTS = [[11, 42, 7, 99, 3, 250, 18, 64], [5, 6, 7, 8, 9, 10], [200, 1, 77, 150, 33, 90, 2, 120, 45, 60]]
MAX_TOKENS = 32
VERIFIER = {"model_type": "llama", "hidden_size": H, "intermediate_size": 256, "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "num_hidden_layers": N_VERIFIER,
            "vocab_size": V, "rms_norm_eps": 1e-6, "max_position_embeddings": 512, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "architectures": ["LlamaForCausalLM"], "torch_dtype": "float32"}
LLAMA = {key: VERIFIER[key] for key in ("model_type", "hidden_size", "intermediate_size", "num_attention_heads",
                                         "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps",
                                         "max_position_embeddings", "rope_theta")}
LLAMA.update(num_hidden_layers=1, attention_bias=False, hidden_act="silu")
QWEN3 = dict(LLAMA, model_type="qwen3")


def eagle3_config(layer: dict, **changes) -> dict:
    fields = {"transformer_layer_config": layer, "draft_vocab_size": V, "norm_before_residual": True,
              "norm_before_fc": False, "fc_norm": False, "norm_output": False, "target_hidden_size": None,
              "eagle_aux_hidden_state_layer_ids": [1, 3, 5]}
    fields.update(changes)
    return fields


def dflash_config(**changes) -> dict:
    fields = {"transformer_layer_config": dict(QWEN3, num_hidden_layers=2), "draft_vocab_size": V,
              "block_size": K + 1, "target_hidden_size": None, "aux_hidden_state_layer_ids": [1, 3, 5],
              "mask_token_id": 255, "sliding_window_non_causal": False, "sample_from_anchor": False}
    fields.update(changes)
    return fields


# draft name -> strict config (the verifier block is completed by write_draft)
DRAFTS: dict[str, dict] = {
    "eagle3-llama-fullvocab": envelope("eagle3", **eagle3_config(LLAMA)),
    "eagle3-llama-draftvocab": envelope("eagle3", **eagle3_config(LLAMA, draft_vocab_size=V_D)),
    "eagle3-llama-normfc": envelope("eagle3", **eagle3_config(LLAMA, norm_before_fc=True)),
    "eagle3-qwen3-fullvocab": envelope("eagle3", **eagle3_config(QWEN3)),
    "peagle-llama": envelope("peagle", mask_token_id=255, **eagle3_config(LLAMA)),
    "dflash-qwen3-2l": envelope("dflash", **dflash_config(sliding_window_non_causal=True)),
    "dflash-qwen3-2l-causal-flag": envelope("dflash", **dflash_config()),
    "eagle3-llama-distilled": envelope("eagle3", **eagle3_config(LLAMA)),
    "dflash-qwen3-2l-verifier-owned": envelope("dflash", **dflash_config(sliding_window_non_causal=True)),
}
# Written like the others, but vLLM 0.32 on CPU refuses to serve them, with this message.
UNSERVED = {
    "dspark-qwen3-2l": (envelope("dspark", **dflash_config(
        sliding_window_non_causal=True, sample_from_anchor=True, block_size=K, markov_rank=16,
        markov_head_type="vanilla", enable_confidence_head=True, confidence_head_with_markov=True)),
        "Model Runner V1 does not support: dspark speculative decoding"),
}
DISTILLED = "eagle3-llama-distilled"
# Drafts on which vLLM 0.32 departs from the spec, each with the reading that reproduces vLLM:
# - sliding_window_non_causal false: vLLM masks the block causally in every layer (it maps the flag to
#   dflash_config.causal, which overrides all layers); the spec keeps full_attention layers bidirectional.
# - vLLM's CPU grouped RMSNorm gives every layer's context keys layer 0's k_norm weight.
DIVERGENT = {"dflash-qwen3-2l-causal-flag": "block-causal in every layer; layer 0's k_norm for all context keys"}
SHARED_K_NORM = {"dflash-qwen3-2l", "dspark-qwen3-2l", "dflash-qwen3-2l-verifier-owned"}  # avoids the k_norm bug
# Saved as speculators 0.9 saves a full-vocabulary DFlash draft: without embed_tokens and lm_head, which are the
# verifier's (spec ALG-DFLASH-5); vLLM binds the target model's in their place.
# It keeps the weights of the draft it is derived from, so the seeds of the others do not move.
VERIFIER_OWNED = {"dflash-qwen3-2l-verifier-owned": ("embed_tokens.weight", "lm_head.weight")}
SAME_WEIGHTS_AS = {"dflash-qwen3-2l-verifier-owned": "dflash-qwen3-2l"}


def draft_config(name: str) -> dict:
    """The strict config; its verifier is a hub id placeholder until point_at_verifier."""
    config = copy.deepcopy(DRAFTS[name] if name in DRAFTS else UNSERVED[name][0])
    sc = config["speculators_config"]
    sc["proposal_methods"][0]["speculative_tokens"] = K
    sc["verifier"].update(hidden_size=H, num_hidden_layers=N_VERIFIER, vocab_size=V)
    return config


def point_at_verifier(path: Path, verifier_dir: Path) -> Path:
    """Name the local verifier directory in a saved draft, which vLLM then loads for LLM(model=draft). A local
    path is for serving on this machine: strict allows only hub ids (CFG-8), so this follows `save`."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    config["speculators_config"]["verifier"]["name_or_path"] = str(verifier_dir.resolve())
    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def near_one_norms(tensors: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Norm weights 1 + N(0, 0.1): a random-sign norm would shrink the logits towards ties."""
    g = torch.Generator().manual_seed(seed)
    return {name: (1 + 0.1 * torch.randn(t.shape, generator=g)) if "norm" in name and t.dim() == 1 else t
            for name, t in tensors.items()}


def write_vllm_verifier(path: Path) -> Path:
    return write_verifier(path, config=VERIFIER)


def load_verifier(path: Path) -> Verifier:
    return Verifier.from_pretrained(path)


def write_draft(name: str, verifier_dir: Path, path: Path, verifier: Verifier | None = None) -> Path:
    """The draft `name`, bound to the verifier at `verifier_dir`, saved strict at `path`."""
    config = draft_config(name)
    seeded = sorted(n for n in [*DRAFTS, *UNSERVED] if n not in SAME_WEIGHTS_AS)
    seed = seeded.index(SAME_WEIGHTS_AS.get(name, name))
    tensors = near_one_norms(random_tensors(config, seed=seed, std=0.1), seed=1)
    if name in SHARED_K_NORM:
        tensors = {n: tensors["layers.0.self_attn.k_norm.weight"] if n.endswith("self_attn.k_norm.weight") else t
                   for n, t in tensors.items()}
    if name == DISTILLED:
        tensors = distill(config, tensors, verifier or load_verifier(verifier_dir))
    tensors = {n: t for n, t in tensors.items() if n not in VERIFIER_OWNED.get(name, ())}
    return point_at_verifier(save(config, tensors, path, overwrite=True), verifier_dir)


def greedy_continuations(verifier: Verifier, prompts: list[list[int]], n: int) -> list[list[int]]:
    from specfmt.generate import generate_plain

    return [prompt + generate_plain(verifier, prompt, n, Proposal()) for prompt in prompts]


def distill(config: dict, tensors: dict[str, torch.Tensor], verifier: Verifier, steps: int = 300,
            seed: int = 0) -> dict[str, torch.Tensor]:
    """Teacher-force the first draft pass on the verifier's greedy continuations: row t reads the aux
    states at t and token t+1, and learns token t+2. fc, the layer and the final norm train; the
    embedding and head are the verifier's and stay frozen, so vLLM shares them."""
    from specfmt.algorithms import eagle3
    from specfmt.weights import bind_roles

    tensors = dict(tensors, **{"embed_tokens.weight": verifier.embed_tokens.clone(),
                               "lm_head.weight": verifier.w["lm_head"].clone()})
    trainable = [name for name in tensors if name not in ("embed_tokens.weight", "lm_head.weight")]
    for name in trainable:
        tensors[name].requires_grad_(True)
    resolved = resolve(config)
    draft = eagle3.build(resolved, bind_roles("eagle3", resolved, tensors), verifier)
    extra = [[(17 * i + 3 * j) % V for j in range(6)] for i in range(12)]
    sequences = greedy_continuations(verifier, PROMPTS + extra, MAX_TOKENS + 8)
    batches = []
    with torch.no_grad():
        for seq in sequences:
            verifier.truncate(0)
            aux = verifier.forward(torch.tensor(seq), draft.aux_ids).aux  # [T, A*H]
            batches.append((torch.tensor(seq), aux.clone()))
    optimizer = torch.optim.Adam([tensors[n] for n in trainable], lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        seq, aux = batches[int(torch.randint(len(batches), (), generator=g))]
        draft.caches = [KVCache() for _ in draft.caches]  # no graph kept from the last step
        t = seq.numel() - 2
        logits, _ = draft.forward_rows(seq[1:t + 1], draft.combine(aux[:t]), torch.arange(t))
        loss = torch.nn.functional.cross_entropy(logits, seq[2:t + 2])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {name: t.detach().contiguous() for name, t in tensors.items()}


def simulate_acceptance(verifier: Verifier, draft) -> dict:
    """What vLLM's counters should read after greedy generation of every prompt with `draft`: chain
    speculation with the reference proposer (specfmt.generate)."""
    per_pos, drafts = [0] * K, 0
    for prompt in PROMPTS:
        stats = generate(verifier, draft, prompt, MAX_TOKENS, Proposal("greedy", K)).stats
        drafts += len(stats.accepted)
        per_pos = [c + sum(a > j for a in stats.accepted) for j, c in enumerate(per_pos)]
    return {"num_drafts": drafts, "accepted_per_pos": per_pos}


def write_mutant(source: Path, path: Path, edit: dict) -> Path:
    """A copy of the checkpoint at `source` with one defect, written without validation (save refuses it)."""
    from specfmt.checkpoint import load
    from specfmt.safetensors_file import write_tensors

    config, tensors = load(source)
    if "remove" in edit:
        del tensors[edit["remove"]]
    if "fill_nan" in edit:
        tensors[edit["fill_nan"]] = torch.full_like(tensors[edit["fill_nan"]], float("nan"))
    if "reshape" in edit:
        name, shape = edit["reshape"]
        tensors[name] = torch.randn(shape) * 0.1
    if "add" in edit:
        name, shape = edit["add"]
        tensors[name] = torch.zeros(shape)
    if "config_delete" in edit:
        *parents, key = edit["config_delete"]
        node = config
        for part in parents:
            node = node[part]
        del node[key]
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    write_tensors(path / "model.safetensors", tensors, {"format": "pt"})
    return path
