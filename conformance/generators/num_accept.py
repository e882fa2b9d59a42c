"""`generate` cases whose drafts agree with their verifier, so that the acceptance counters (VRF-6) can fail.

With greedy verification a generation's tokens are the verifier's whatever the draft proposes, so only the
counters show a broken draft or a wrong rollback; with random drafts they are all zero. These cases build
drafts that are accepted by construction.

The verifier is a bigram model with head_dim 32 (num_head32's dimensions, which vLLM's CPU kernels run): every
decoder layer's o_proj and down_proj are zero, so every hidden state (each aux id, `last`) of a position is the
embedding of its token, and its greedy successor is succ(x), a permutation of the vocabulary with one cycle
through the draft vocabulary SUBSET and one through the rest. Embedding rows are C * s_x, s_x a distinct +-1
vector whose coordinate FLAG is +1 (the mask token's row is -C at FLAG only); the final norm weight is 1, so
the normed state is s_x; LM head row y is the embedding row of pred(y) = succ^-1(y), so the logit of y is
C <s_pred(y), s_x>, largest at succ(x) by at least 2 C.

Each draft is made of zeros, identities and permuted copies of the verifier's rows (exact in bfloat16):
- eagle, mtp: the fused input keeps the token's embedding, the layer adds zero, the verifier's head reads it:
  every draft token is accepted (as are medusa's heads, mlp_speculator's stages and dspark's Markov bias);
- eagle3, peagle: fc keeps the aux state of position n-1, the layer adds zero, head row j is the embedding of
  pred^2(target j): the first draft token of each step is accepted;
- dflash: every mask slot attends only to the anchor (a key coordinate, FLAG, at RoPE's slowest frequency,
  whose sign separates the anchor's key from the context's and the mask slots'), and reads its embedding:
  the first draft token is accepted;
- ngram: the prompt holds a run of the verifier's cycle, which lookups continue until the run ends;
- independent: the numerics verifier's first three of six layers, its own norm and head (real attention,
  head_dim 8): some steps accept and some do not.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from conformance.generators import num_fixtures, num_head32, variants
from conformance.generators.common import slug, write_json
from conformance.generators.num_fixtures import FIXTURES
from conformance.generators.numerics import SEEDS, NumericsCase, generate_case, prompt
from specfmt import save
from specfmt.safetensors_file import write_tensors

ROOT = FIXTURES / "bigram"
VERIFIER = (ROOT / "verifier").as_posix()
H, V, V_D, N = num_head32.H, num_head32.V, num_head32.V_D, num_head32.N_VERIFIER
C = 1 / 8  # embedding entries are +-C
FLAG = 15  # the key coordinate that marks the DFlash anchor: RoPE pairs (15, 31) turn slowest with head_dim 32
MASK = V - 1  # mask_token_id of peagle and dflash, outside SUBSET
EAGLE3 = {"draft_vocab_size": V_D, "eagle_aux_hidden_state_layer_ids": [0, 1, 2]}
FLASH = {"draft_vocab_size": V, "aux_hidden_state_layer_ids": [1, 2, 3], "mask_token_id": MASK,
         "sliding_window_non_causal": True}
PROMISES = {  # what a construction promises per step, checked on the case, and how its description says it
    "all": ("every draft token accepted", lambda acc, k: all(a == k for a in acc)),
    "first": ("the first draft token of every step accepted", lambda acc, k: all(a >= 1 for a in acc)),
    "run": ("lookups accepted until the prompt's run ends", lambda acc, k: acc[0] == k and 0 in acc),
    "mixed": ("some steps accepted, some not", lambda acc, k: any(0 < a < k for a in acc) and len(set(acc)) > 1),
}
# fixture name -> (builder variant, top-level changes, decoder layers, its PROMISES key)
DRAFTS = {
    "eagle3": ("eagle3", EAGLE3, 1, "first"),
    "peagle": ("peagle", dict(EAGLE3, draft_vocab_size=V, mask_token_id=MASK), 1, "first"),
    "eagle": ("eagle", {}, 1, "all"),
    "mtp": ("mtp", {}, N, "all"),
    "dflash": ("dflash", FLASH, 1, "first"),
    "dspark": ("dspark", dict(FLASH, draft_vocab_size=V_D), 1, "all"),
    "medusa": ("medusa", {}, None, "all"),
    "mlp_speculator": ("mlp_speculator", {}, None, "all"),
    "ngram": ("ngram", {}, None, "run"),
}


def draft_path(name: str) -> str:
    return (ROOT / name).as_posix()


def signs(rows: int, width: int, seed: int) -> torch.Tensor:
    """`rows` distinct +-1 vectors of `width`, drawn with randint (the same on every CPU)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        s = torch.randint(0, 2, (rows, width), generator=g).float() * 2 - 1
        if len({tuple(r.tolist()) for r in s}) == rows:
            return s


def bigram() -> tuple[list[int], list[int], torch.Tensor]:
    """SUBSET (the draft vocabulary's target ids, sorted), succ as a list, and the embedding [V, H]."""
    g = torch.Generator().manual_seed(7)
    order = torch.randperm(V - 1, generator=g).tolist()  # every id but MASK
    subset = order[:V_D]
    rest = order[V_D:] + [MASK]
    succ = [0] * V
    for cycle in (subset, rest):
        for i, x in enumerate(cycle):
            succ[x] = cycle[(i + 1) % len(cycle)]
    s = signs(V, H, seed=8)
    s[:, FLAG] = 1
    embed = C * s
    embed[MASK] = 0
    embed[MASK, FLAG] = -C
    return sorted(subset), succ, embed


SUBSET, SUCC, EMBED = bigram()
PRED = [SUCC.index(y) for y in range(V)]


def power(perm: list[int], n: int, x: int) -> int:
    for _ in range(n):
        x = perm[x]
    return x


def rows_of(embed: torch.Tensor, n: int, targets: list[int]) -> torch.Tensor:
    """Head rows whose logit is largest at the target y = succ^n(x) for state s_x: row y is embed[pred^n(y)]."""
    return torch.stack([embed[power(PRED, n, y)] for y in targets])


def eye_block(out: int, width: int, start: int = 0, sign: float = 1.0) -> torch.Tensor:
    """[out, width] zeros with sign * I in columns start..start+out-1."""
    w = torch.zeros(out, width)
    w[:, start:start + out] = sign * torch.eye(out)
    return w


def zero(tensors: dict, *suffixes: str) -> None:
    for name in tensors:
        if name.endswith(suffixes):
            tensors[name] = torch.zeros_like(tensors[name])


def ones(tensors: dict, *suffixes: str) -> None:
    for name in tensors:
        if name.endswith(suffixes):
            tensors[name] = torch.ones_like(tensors[name])


def draft_vocabulary(t: dict, config: dict) -> list[int]:
    """The target id of each draft id: SUBSET through d2t/t2d when the draft vocabulary is reduced."""
    if config.get("draft_vocab_size", V) == V:
        return list(range(V))
    t["d2t"] = torch.tensor(SUBSET) - torch.arange(V_D)
    t["t2d"] = torch.zeros(V, dtype=torch.bool)
    t["t2d"][SUBSET] = True
    return SUBSET


def verifier_tensors(config: dict) -> dict[str, torch.Tensor]:
    wrapped = {"speculators_model_type": "independent", "transformer_layer_config": config,
               "speculators_config": variants.VARIANTS["independent"]["speculators_config"]}
    t = num_head32.weights(variants.tensors_for(wrapped), seed=200)
    zero(t, "o_proj.weight", "down_proj.weight")
    t["model.embed_tokens.weight"] = EMBED
    t["model.norm.weight"] = torch.ones(H)
    t["lm_head.weight"] = rows_of(EMBED, 1, list(range(V)))
    return t


def agreeing(name: str, config: dict, t: dict) -> dict[str, torch.Tensor]:
    """Overwrite the random tensors `t` of draft `name` with the construction of the module docstring."""
    lm_head = rows_of(EMBED, 1, list(range(V)))
    if name in ("eagle3", "peagle"):
        targets = draft_vocabulary(t, config)
        t["fc.weight"] = eye_block(H, 3 * H)
        zero(t, "o_proj.weight", "down_proj.weight", "mask_hidden")
        ones(t, "hidden_norm.weight", "norm.weight")
        t["lm_head.weight"] = rows_of(EMBED, 2, targets)
    elif name == "eagle":
        t["fusion_fc.weight"] = eye_block(H, 2 * H)
        zero(t, "o_proj.weight", "down_proj.weight")
    elif name == "mtp":
        t["mtp_layers.0.input_proj.weight"] = eye_block(H, 2 * H)
        zero(t, "o_proj.weight", "down_proj.weight")
        ones(t, "token_layernorm.weight", "final_layernorm.weight")
    elif name == "medusa":
        zero(t, "layers.0.weight", "layers.0.bias")
        for j in range(config["medusa_num_heads"]):
            t[f"lm_heads.{j}.weight"] = rows_of(EMBED, j + 2, list(range(V)))
    elif name == "mlp_speculator":
        code = C * signs(V, config["inner_dim"], seed=9)
        for i in range(config["n_predict"]):
            t[f"emb.{i}.weight"] = code
            t[f"proj.{i}.weight"] = torch.zeros_like(t[f"proj.{i}.weight"])
            t[f"ln.{i}.weight"], t[f"ln.{i}.bias"] = torch.ones(code.shape[1]), torch.zeros(code.shape[1])
            t[f"head.{i}.weight"] = rows_of(code, 1, list(range(V)))
    elif name == "dspark":
        targets = draft_vocabulary(t, config)
        code = C * signs(V, config["markov_rank"], seed=10)
        t["lm_head.weight"] = torch.zeros_like(t["lm_head.weight"])
        t["markov_head.markov_w1.weight"] = code
        t["markov_head.markov_w2.weight"] = rows_of(code, 1, targets)
    elif name == "dflash":
        t["embed_tokens.weight"], t["lm_head.weight"] = EMBED, lm_head
        t["fc.weight"] = eye_block(H, 3 * H, sign=-1.0)  # context keys get sign -1 at FLAG
        q, k = torch.zeros(H, H), torch.zeros(H, H)
        q[FLAG, FLAG], k[FLAG, FLAG] = -1, 1  # the mask row's query is +, the anchor's key +, all other keys -
        t["layers.0.self_attn.q_proj.weight"], t["layers.0.self_attn.k_proj.weight"] = q, k
        t["layers.0.self_attn.v_proj.weight"] = t["layers.0.self_attn.o_proj.weight"] = torch.eye(H)
        t["layers.0.self_attn.q_norm.weight"] = t["layers.0.self_attn.k_norm.weight"] = torch.full((H,), 4.0)
        zero(t, "down_proj.weight")
        ones(t, "hidden_norm.weight", "input_layernorm.weight", "layers.0.post_attention_layernorm.weight",
             "norm.weight")
    return {n: x.to(torch.bfloat16) if x.is_floating_point() else x for n, x in t.items()}


def independent_config() -> dict:
    """The numerics verifier's first three layers as an independent draft."""
    config = variants.config_of("independent")
    config["dtype"] = "bfloat16"
    config["speculators_config"]["verifier"].update(hidden_size=num_fixtures.H, vocab_size=num_fixtures.V)
    layer = {key: num_fixtures.VERIFIER_CONFIG[key] for key in config["transformer_layer_config"]
             if key in num_fixtures.VERIFIER_CONFIG}
    config["transformer_layer_config"].update(layer, num_hidden_layers=3)
    return config


def write_fixtures(suite: Path) -> None:
    config = dict(num_head32.VERIFIER_CONFIG)
    write_json(suite / VERIFIER / "config.json", config)
    write_tensors(suite / VERIFIER / "model.safetensors", {
        n: x.to(torch.bfloat16) for n, x in verifier_tensors(config).items()}, {"format": "pt"})
    for seed, (name, (variant, changes, layers, _)) in enumerate(DRAFTS.items(), start=201):
        config = num_head32.shaped(variant, changes, layers)
        tensors = num_head32.weights(variants.tensors_for(config), seed)
        save(config, agreeing(name, config, {n: x.float() if x.is_floating_point() else x
                                             for n, x in tensors.items()}), suite / draft_path(name))
    verifier = load_file(suite / num_fixtures.VERIFIER / "model.safetensors")
    kept = {n: x for n, x in verifier.items() if not n.startswith("model.layers.")
            or int(n.split(".")[2]) < 3}
    save(independent_config(), kept, suite / draft_path("independent"))


def subset_prompt(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(SUBSET)[torch.randint(0, V_D, (6,), generator=g)]


def run_prompt() -> torch.Tensor:
    """a, succ(a), ..., succ^6(a), a: lookups find each continuation until the run's end."""
    a = SUBSET[0]
    return torch.tensor([power(SUCC, i, a) for i in range(7)] + [a])


def cases(suite: Path) -> list[NumericsCase]:
    out = []
    for name, (variant, _, _, kind) in [*DRAFTS.items(), ("independent", ("independent", {}, 3, "mixed"))]:
        algorithm = variants.VARIANTS[variant]["speculators_model_type"]
        about, holds = PROMISES[kind]
        prompts = ([run_prompt()] if kind == "run" else [prompt(seed, 6) for seed in SEEDS] if kind == "mixed"
                   else [subset_prompt(seed) for seed in SEEDS])
        verifier = num_fixtures.VERIFIER if name == "independent" else VERIFIER
        out.append(generate_case(suite, algorithm, checkpoint=draft_path(name), verifier_path=verifier,
                                 name=f"accept.{slug(name)}", prompts=prompts,
                                 wanted=lambda acc, holds=holds: holds(acc, 3),
                                 about=f"a draft built to agree with its verifier: {about}"))
    return out
