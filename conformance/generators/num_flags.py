"""Numerics cases for the flag combinations the one-fixture-per-algorithm cases leave out, every decoder with
grouped-query attention of more than one key-value head (4 query heads on 2), so that a wrong head mapping fails.

- eagle3: fc_norm over 4 aux states; norm_before_fc with norm_output (qwen3, attention bias, 2 layers, full
  vocabulary); the residual taken before the hidden norm (2 layers); a verifier 24 wide under a 16-wide draft
  (target_hidden_size);
- peagle with fc_norm; eagle with HASS's layernorms and fusion bias;
- dspark's gated and rnn Markov heads; dflash with a sliding-window layer (window 3) before a full one;
- medusa on the verifier's own LM head with 2 layers per head; mtp with attention bias, and mtp reading the
  verifier state after its final norm (post_norm);
- independent drafts of the qwen2 family with tied embeddings and of qwen3 with attention bias;
- a qwen2 verifier (q, k and v biases) with tied embeddings and 2 key-value heads, run alone
  (verifier_forward) and under the wide eagle3 draft.

Sizes as num_fixtures (hidden 16, vocabulary 64, draft vocabulary 24), weights drawn the same way.
"""

from __future__ import annotations

from pathlib import Path

from conformance.generators import num_fixtures, variants
from conformance.generators.common import write_json
from conformance.generators.num_fixtures import FIXTURES, V
from conformance.generators.numerics import NumericsCase, proposal_cases, verifier_forward_cases
from specfmt import save
from specfmt.safetensors_file import write_tensors

ROOT = FIXTURES / "flags"
GQA = {"num_attention_heads": 4, "num_key_value_heads": 2}
WIDE_H, WIDE_LAYERS = 24, 4
WIDE = (ROOT / "verifier-qwen2-tied").as_posix()
WIDE_CONFIG = {"model_type": "qwen2", "hidden_size": WIDE_H, "intermediate_size": 32, **GQA,
               "num_hidden_layers": WIDE_LAYERS, "vocab_size": V, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
               "rope_theta": 10000.0, "tie_word_embeddings": True, "architectures": ["Qwen2ForCausalLM"]}
# fixture name -> (builder variant, top-level changes, transformer_layer_config changes, verifier)
DRAFTS = {
    "eagle3-fc-norm-4aux": ("eagle3_fcnorm_4aux", {}, {}, num_fixtures.VERIFIER),
    "eagle3-qwen3-bias-2l-norm-before-fc-norm-output": ("eagle3_qwen3_2l_fullvocab_normfc", {}, {},
                                                        num_fixtures.VERIFIER),
    "eagle3-2l-residual-before-norm": ("eagle3_llama_2l_residual_before_norm", {}, {}, num_fixtures.VERIFIER),
    "eagle3-verifier-24-wide": ("eagle3", {"target_hidden_size": WIDE_H, "eagle_aux_hidden_state_layer_ids": [1, 2, 3]},
                                {}, WIDE),
    "peagle-fc-norm": ("peagle_fcnorm", {}, {}, num_fixtures.VERIFIER),
    "eagle-hass-layernorms-fusion-bias": ("eagle_hass_norms", {}, {}, num_fixtures.VERIFIER),
    "dspark-gated": ("dspark_gated", {}, {}, num_fixtures.VERIFIER),
    "dspark-rnn-bias": ("dspark_rnn_bias", {}, {}, num_fixtures.VERIFIER),
    "dflash-sliding-window": ("dflash", {}, {"layer_types": ["sliding_attention", "full_attention"],
                                             "sliding_window": 3}, num_fixtures.VERIFIER),
    "medusa-verifier-lm-head-2l": ("medusa_shared_head", {}, {}, num_fixtures.VERIFIER),
    "mtp-bias": ("mtp_qwen3_bias", {}, {}, num_fixtures.VERIFIER),
    "independent-qwen2-tied": ("independent_qwen2_tied", {}, {}, num_fixtures.VERIFIER),
    "independent-qwen3-bias": ("independent_qwen3_bias", {}, {}, num_fixtures.VERIFIER),
    "mtp-post-norm": ("mtp_post_norm", {}, {}, num_fixtures.VERIFIER),  # last: each fixture's seed is its index
}


def draft_path(name: str) -> str:
    return (ROOT / name).as_posix()


def draft_config(name: str) -> dict:
    """The variant at num_fixtures' sizes with 2 key-value heads, bound to its verifier."""
    variant, changes, layer_changes, verifier = DRAFTS[name]
    config = num_fixtures.draft_config(variant)
    config.update(changes)
    layer = config.get("transformer_layer_config")
    if layer is not None:
        layer.update(GQA, **layer_changes)
        if layer["model_type"] == "qwen2":
            layer.pop("head_dim")  # qwen2 configs have none: H / heads
    if verifier == WIDE:
        config["speculators_config"]["verifier"].update(hidden_size=WIDE_H, num_hidden_layers=WIDE_LAYERS)
    return config


def write_fixtures(suite: Path) -> None:
    wrapped = {"speculators_model_type": "independent", "transformer_layer_config": WIDE_CONFIG,
               "speculators_config": variants.VARIANTS["independent"]["speculators_config"]}
    write_json(suite / WIDE / "config.json", WIDE_CONFIG)
    write_tensors(suite / WIDE / "model.safetensors", num_fixtures.weights(variants.tensors_for(wrapped), seed=300),
                  {"format": "pt"})
    for seed, name in enumerate(DRAFTS, start=301):
        config = draft_config(name)
        save(config, num_fixtures.weights(variants.tensors_for(config), seed), suite / draft_path(name))


def cases(suite: Path) -> list[NumericsCase]:
    """verifier_forward on the qwen2 verifier; propose and draft_forward (k 3) for each draft."""
    out = verifier_forward_cases(suite, WIDE, ([0, 2, 4],), name="qwen2-tied-gqa.",
                                 about="qwen2 (q, k, v biases, tied embeddings, 2 key-value heads): ")
    for name, (variant, _, _, verifier) in DRAFTS.items():
        algorithm = variants.VARIANTS[variant]["speculators_model_type"]
        out += proposal_cases(suite, algorithm, checkpoint=draft_path(name), verifier_path=verifier,
                              name=f"flags.{name}")
    return out
