"""Numerics cases for the verifier rules no other case reaches, a DFlash draft on the verifier's own tensors, and
the requests a runtime must refuse.

- VFR-9: llama3 RoPE scaling, read from `rope_parameters`, and read from `rope_scaling` when `rope_parameters`
  holds the default (original_max_position_embeddings 16, so the 8 positions of a case meet every band);
- VFR-2: a tied verifier that also stores an `lm_head.weight` (not read); VFR-7: head_dim 4 where H / n_h is 8
  (the scale is 1/sqrt(head_dim)), and a config that names a sliding window (a verifier has none);
- ALG-DFLASH-5: a full-vocabulary DFlash draft without `embed_tokens` and `lm_head` reads the verifier's, its
  `lm_head` on the untied verifier and its embedding on the tied one;
- refusals (PROTOCOL.md 3.4), each graded by its code: K above medusa's heads (ALG-MEDUSA-2), mlp_speculator's
  stages (ALG-MLP-1) and a DFlash block's predicting slots (ALG-DFLASH-2), `refused.k_above_limit`; a DFlash
  block of 1 without sample_from_anchor (ALG-DFLASH-2) and a DFlash draft without its LM head on a wider
  verifier (ALG-DFLASH-5), `refused.draft`; a verifier of another family or activation (VFR-1), with query heads
  no multiple of the key-value heads (VFR-7) or an undefined rope_type (VFR-9), `refused.verifier`.

Verifiers differ from num_fixtures' only where they say so, and have 2 layers, not 6, to keep the suite small (the
tied one keeps 6: the DFlash draft it serves is bound to 6); weights are drawn as num_fixtures', with its seed 0. A
verifier only a refusal case loads has 1 layer (2 for the 24-wide one) and zero weights, which a download compresses
away: the request is refused before any weight is read, and a runtime that does not refuse runs it all the same.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from conformance.generators import num_fixtures, variants
from conformance.generators.common import write_json
from conformance.generators.num_fixtures import FIXTURES, V
from conformance.generators.numerics import (
    COMPUTE_DTYPE,
    SEEDS,
    NumericsCase,
    prompt,
    proposal_cases,
    stored,
    verifier_forward_cases,
)
from specfmt import save
from specfmt.safetensors_file import write_tensors
from specfmt.verifier import Verifier

ROOT = FIXTURES / "rules"
VERIFIER, DFLASH = "spec/verifier.md", "spec/algorithms/dflash.md"
TWO, ONE = {"num_hidden_layers": 2}, {"num_hidden_layers": 1}
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}
# fixture name -> (config changes, the rule it tests); weights drawn for the changed config with seed 0
VERIFIERS = {
    "verifier-llama3-rope-parameters": ({**TWO, "rope_parameters": {**LLAMA3, "rope_theta": 10000.0}}, "VFR-9"),
    "verifier-llama3-rope-scaling": ({**TWO, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
                                      "rope_scaling": LLAMA3}, "VFR-9"),
    "verifier-tied-stored-lm-head": ({"tie_word_embeddings": True}, "VFR-2"),
    "verifier-head-dim-4": ({**TWO, "head_dim": 4}, "VFR-7"),
    "verifier-sliding-window-named": ({**TWO, "sliding_window": 2, "use_sliding_window": True, "max_window_layers": 0,
                                       "layer_types": ["sliding_attention"] * 2}, "VFR-7"),
}
REFUSED_VERIFIERS = {
    "verifier-rope-yarn": ({**ONE, "rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "VFR-9"),
    "verifier-mistral": ({**ONE, "model_type": "mistral", "architectures": ["MistralForCausalLM"]}, "VFR-1"),
    "verifier-gelu": ({**ONE, "hidden_act": "gelu"}, "VFR-1"),
    "verifier-3-heads-on-2": ({**ONE, "num_attention_heads": 3, "num_key_value_heads": 2}, "VFR-7"),
}
WIDE = "verifier-24-wide"  # the draft of dflash-head-of-24-wide-verifier needs its verifier's LM head, 24 wide
FULL_VOCAB = {"draft_vocab_size": V}
# draft fixture name -> (config changes, verifier changes, tensors left out)
DRAFTS = {
    "dflash-verifier-head": (FULL_VOCAB, {}, ("embed_tokens.weight", "lm_head.weight")),
    "dflash-block-1": ({"block_size": 1}, {}, ()),
    "dflash-head-of-24-wide-verifier": (dict(FULL_VOCAB, target_hidden_size=24, aux_hidden_state_layer_ids=[0, 1, 2]),
                                        {"hidden_size": 24, **TWO}, ("embed_tokens.weight", "lm_head.weight")),
}


def path(name: str) -> str:
    return (ROOT / name).as_posix()


def verifier_config(changes: dict) -> dict:
    return {**num_fixtures.VERIFIER_CONFIG, **copy.deepcopy(changes)}


def write_verifier(suite: Path, name: str, changes: dict, zeros: bool = False) -> None:
    """config.json and weights (`zeros`: all zero); a tied one also stores an lm_head.weight unlike its embedding
    (VFR-2)."""
    config = verifier_config(changes)
    wrapped = {"speculators_model_type": "independent", "transformer_layer_config": config,
               "speculators_config": variants.VARIANTS["independent"]["speculators_config"]}
    tensors = num_fixtures.weights(variants.tensors_for(wrapped), seed=0)
    if zeros:
        tensors = {k: torch.zeros_like(t) for k, t in tensors.items()}
    if config.get("tie_word_embeddings"):
        tensors["lm_head.weight"] = num_fixtures.weights({"lm_head.weight": tensors["model.embed_tokens.weight"]},
                                                         seed=1)["lm_head.weight"]
    write_json(suite / path(name) / "config.json", config)
    write_tensors(suite / path(name) / "model.safetensors", tensors, {"format": "pt"})


def draft_config(name: str) -> dict:
    changes, verifier_changes, _ = DRAFTS[name]
    config = num_fixtures.draft_config("dflash")
    config.update(changes)
    config["speculators_config"]["verifier"].update(verifier_changes)
    return config


def write_fixtures(suite: Path) -> None:
    for name, (changes, _) in VERIFIERS.items():
        write_verifier(suite, name, changes)
    for name, (changes, _) in REFUSED_VERIFIERS.items():
        write_verifier(suite, name, changes, zeros=True)
    write_verifier(suite, WIDE, {"hidden_size": 24, **TWO}, zeros=True)
    for seed, name in enumerate(DRAFTS, start=400):
        config = draft_config(name)
        tensors = num_fixtures.weights(variants.tensors_for(config), seed)
        save(config, {k: t for k, t in tensors.items() if k not in DRAFTS[name][2]}, suite / path(name))


def verifier_cases(suite: Path) -> list[NumericsCase]:
    out = []
    for name, (_, rule) in VERIFIERS.items():
        for case in verifier_forward_cases(suite, path(name), ([1, 2],), name=f"{name}.", about=f"{rule}, {name}: "):
            case.spec = [f"{VERIFIER}#{rule}", *case.spec]
            out.append(case)
    return out


def dflash_cases(suite: Path) -> list[NumericsCase]:
    """The full-vocabulary DFlash draft without embedding and LM head, on the untied and the tied verifier."""
    out = proposal_cases(suite, "dflash", checkpoint=path("dflash-verifier-head"), name="rules.dflash-verifier-head")
    out += proposal_cases(suite, "dflash", checkpoint=path("dflash-verifier-head"), forward=False,
                          verifier_path=path("verifier-tied-stored-lm-head"), name="rules.dflash-tied-verifier-head")
    for case in out:
        case.spec = [f"{DFLASH}#ALG-DFLASH-5", *case.spec]
    return out


def verifier_inputs(suite: Path, verifier: str, aux_ids: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """propose's inputs for a draft reading `aux_ids`, from 6 seeded tokens and the verifier's greedy token."""
    loaded = Verifier.from_pretrained(suite / verifier, dtype=COMPUTE_DTYPE)
    tokens = prompt(SEEDS[0], 6)
    out = loaded.forward(tokens, aux_ids)
    return {"token_ids": torch.cat([tokens, out.logits[-1].argmax().reshape(1)]), "aux": stored(out.aux),
            "last": stored(out.last), "normed": stored(out.normed)}


def refusal(case_id: str, about: str, spec: list[str], operation: str, checkpoint: str | None, verifier: str,
            params: dict, inputs: dict, code: str) -> NumericsCase:
    return NumericsCase(case_id, about, spec, operation, checkpoint, verifier, params, inputs, {}, {}, refusal=code)


def refusal_cases(suite: Path) -> list[NumericsCase]:
    base, out = num_fixtures.VERIFIER, []
    tokens = {"token_ids": prompt(SEEDS[0], 8)}
    for name, (_, rule) in REFUSED_VERIFIERS.items():
        out.append(refusal(f"num.refuse.{name}", f"{rule}: a verifier the spec requires refused ({name})",
                           [f"{VERIFIER}#{rule}"], "verifier_forward", None, path(name), {"aux_ids": [1]}, tokens,
                           "refused.verifier"))
    limits = {"medusa": ("ALG-MEDUSA-2", "medusa_num_heads", 3), "mlp_speculator": ("ALG-MLP-1", "n_predict", 3),
              "dflash": ("ALG-DFLASH-2", "predicting slots (block_size 4 - 1)", 3)}
    for algorithm, (rule, limit, k) in limits.items():
        config = num_fixtures.draft_config(algorithm)
        aux = tuple(config.get("aux_hidden_state_layer_ids", ()))
        out.append(refusal(f"num.refuse.{algorithm.replace('_', '-')}-k{k + 1}",
                           f"{rule}: K {k + 1} above the {limit} {k}, refused, never answered with {k} tokens",
                           [f"spec/algorithms/{algorithm}.md#{rule}"], "propose", num_fixtures.draft_path(algorithm),
                           base, {"k": k + 1}, verifier_inputs(suite, base, aux), "refused.k_above_limit"))
    aux = tuple(num_fixtures.draft_config("dflash")["aux_hidden_state_layer_ids"])
    out.append(refusal("num.refuse.dflash-block-1", "ALG-DFLASH-2: block_size 1 without sample_from_anchor: "
                       "no slot predicts, the draft is refused", [f"{DFLASH}#ALG-DFLASH-2"], "propose",
                       path("dflash-block-1"), base, {"k": 1}, verifier_inputs(suite, base, aux), "refused.draft"))
    out.append(refusal("num.refuse.dflash-head-of-24-wide-verifier", "ALG-DFLASH-5: a 16-wide draft without "
                       "embed_tokens and lm_head would read the 24-wide verifier's: refused",
                       [f"{DFLASH}#ALG-DFLASH-5"], "propose", path("dflash-head-of-24-wide-verifier"), path(WIDE),
                       {"k": 3},
                       verifier_inputs(suite, path(WIDE), (0, 1, 2)), "refused.draft"))
    return out


def cases(suite: Path) -> list[NumericsCase]:
    return verifier_cases(suite) + dflash_cases(suite) + refusal_cases(suite)
