"""Tiny strict checkpoints for every algorithm, with tensors generated from the layout documents: the builder
variants the conformance suite is generated from (and the tests build on, through tests/builders.py).

VARIANTS holds one small strict config per case; together they switch on every conditional tensor
of every layout document. The corpus of checkpoints written by the speculators library is data under
tests/corpus/speculators: this module reads it, and imports nothing from tests/.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch

from specfmt.safetensors_file import read_manifest, write_sparse, write_tensors
from specfmt.schemas import VERSION
from specfmt.synthetic import random_tensors

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "corpus" / "speculators"
H, V, V_D, N_VERIFIER = 32, 128, 40, 6

LLAMA = {"model_type": "llama", "hidden_size": H, "intermediate_size": 96, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 8, "num_hidden_layers": 1, "vocab_size": V, "rms_norm_eps": 1e-6,
         "attention_bias": False, "max_position_embeddings": 256, "hidden_act": "silu"}


def layer(**changes) -> dict:
    cfg = dict(LLAMA, **changes)
    if cfg["model_type"] == "qwen2":
        cfg.pop("attention_bias")
        cfg.pop("head_dim")
    return cfg


def envelope(algorithm: str, **fields) -> dict:
    return {
        "speculators_model_type": algorithm,
        "speculators_format_version": VERSION,
        "dtype": "float32",
        "speculators_config": {
            "algorithm": algorithm,
            "default_proposal_method": "greedy",
            "proposal_methods": [{"proposal_type": "greedy", "speculative_tokens": 3, "verifier_accept_k": 1,
                                  "accept_tolerance": 0.0}],
            "verifier": {"name_or_path": "local/verifier", "architectures": ["LlamaForCausalLM"], "hidden_size": H,
                         "num_hidden_layers": N_VERIFIER, "vocab_size": V},
        },
        **fields,
    }


def eagle3_fields(**changes) -> dict:
    fields = {"transformer_layer_config": layer(), "draft_vocab_size": V_D, "norm_before_residual": True,
              "norm_before_fc": False, "fc_norm": False, "norm_output": False, "target_hidden_size": None,
              "eagle_aux_hidden_state_layer_ids": [1, 3, 5]}
    fields.update(changes)
    return fields


def dflash_fields(**changes) -> dict:
    fields = {"transformer_layer_config": layer(model_type="qwen3", num_hidden_layers=2), "draft_vocab_size": V_D,
              "block_size": 4, "target_hidden_size": None, "aux_hidden_state_layer_ids": [1, 3, 5],
              "mask_token_id": 5, "sliding_window_non_causal": False, "sample_from_anchor": False}
    fields.update(changes)
    return fields


def dspark_fields(**changes) -> dict:
    fields = dflash_fields(sample_from_anchor=True, markov_rank=16, markov_head_type="vanilla",
                           enable_confidence_head=True, confidence_head_with_markov=True)
    fields.update(changes)
    return fields


VARIANTS: dict[str, dict] = {
    "eagle3": envelope("eagle3", **eagle3_fields()),
    "eagle3_qwen3_2l_fullvocab_normfc": envelope("eagle3", **eagle3_fields(
        transformer_layer_config=layer(model_type="qwen3", num_hidden_layers=2, attention_bias=True),
        draft_vocab_size=V, norm_before_fc=True, norm_output=True)),
    "eagle3_llama_2l_residual_before_norm": envelope("eagle3", **eagle3_fields(
        transformer_layer_config=layer(num_hidden_layers=2), norm_before_residual=False)),
    "eagle3_fcnorm_4aux": envelope("eagle3", **eagle3_fields(
        fc_norm=True, eagle_aux_hidden_state_layer_ids=[0, 2, 4, 6])),
    "peagle": envelope("peagle", mask_token_id=7, **eagle3_fields()),
    "peagle_qwen3_2l_bias_normfc": envelope("peagle", mask_token_id=7, **eagle3_fields(
        transformer_layer_config=layer(model_type="qwen3", num_hidden_layers=2, attention_bias=True),
        norm_before_fc=True)),
    "peagle_fcnorm": envelope("peagle", mask_token_id=7, **eagle3_fields(fc_norm=True)),
    "eagle": envelope("eagle", transformer_layer_config=layer(), layernorms=False, fusion_bias=False),
    "eagle_qwen3_bias": envelope("eagle", transformer_layer_config=layer(model_type="qwen3", attention_bias=True),
                                 layernorms=False, fusion_bias=False),
    "eagle_hass_norms": envelope("eagle", transformer_layer_config=layer(), layernorms=True, fusion_bias=True),
    "independent": envelope("independent", transformer_layer_config=layer(num_hidden_layers=2)),
    "independent_qwen2_tied": envelope("independent", transformer_layer_config=layer(
        model_type="qwen2", num_hidden_layers=2, tie_word_embeddings=True)),
    "independent_qwen3_bias": envelope("independent", transformer_layer_config=layer(
        model_type="qwen3", num_hidden_layers=2, attention_bias=True)),
    "mtp": envelope("mtp", transformer_layer_config=layer(model_type="qwen3", num_hidden_layers=N_VERIFIER),
                    num_nextn_predict_layers=1, verifier_hidden_state="pre_norm"),
    "mtp_qwen3_bias": envelope("mtp", transformer_layer_config=layer(
        model_type="qwen3", num_hidden_layers=N_VERIFIER, attention_bias=True), num_nextn_predict_layers=1,
        verifier_hidden_state="pre_norm"),
    "mtp_post_norm": envelope("mtp", transformer_layer_config=layer(model_type="qwen3", num_hidden_layers=N_VERIFIER),
                              num_nextn_predict_layers=1, verifier_hidden_state="post_norm"),
    "dflash": envelope("dflash", **dflash_fields()),
    "dflash_bias": envelope("dflash", **dflash_fields(transformer_layer_config=layer(
        model_type="qwen3", num_hidden_layers=2, attention_bias=True))),
    "dflash_fullvocab": envelope("dflash", **dflash_fields(draft_vocab_size=V)),
    "dspark": envelope("dspark", **dspark_fields()),
    "dspark_fullvocab_gated": envelope("dspark", **dspark_fields(draft_vocab_size=V, markov_head_type="gated")),
    "dspark_gated": envelope("dspark", **dspark_fields(markov_head_type="gated")),
    "dspark_rnn_bias": envelope("dspark", **dspark_fields(markov_head_type="rnn", transformer_layer_config=layer(
        model_type="qwen3", num_hidden_layers=2, attention_bias=True))),
    "dspark_conf_nomarkov": envelope("dspark", **dspark_fields(confidence_head_with_markov=False)),
    "medusa": envelope("medusa", medusa_num_heads=3, medusa_num_layers=1, medusa_fc_bias=True,
                       original_lm_head=False),
    "medusa_shared_head": envelope("medusa", medusa_num_heads=3, medusa_num_layers=2, medusa_fc_bias=False,
                                   original_lm_head=True),
    "mlp_speculator": envelope("mlp_speculator", n_predict=3, inner_dim=16, tie_weights=False, scale_input=False,
                               top_k_tokens_per_head=[4, 3, 2], n_candidates=5),
    "ngram": envelope("ngram", prompt_lookup_min=1, prompt_lookup_max=3),
}


def config_of(variant: str) -> dict:
    return copy.deepcopy(VARIANTS[variant])


def tensors_for(config: dict, seed: int = 0, std: float = 0.02) -> dict[str, torch.Tensor]:
    """Every active tensor of the config's layout: small random floats and a valid vocab mapping."""
    return random_tensors(config, seed, std)


def corpus_names() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def corpus_checkpoint(name: str, dest: Path) -> Path:
    """A header-only fixture of a corpus checkpoint: its config.json and a sparse safetensors file."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(CORPUS / name / "config.json", dest / "config.json")
    write_sparse(dest / "model.safetensors", read_manifest(CORPUS / name / "tensors.tsv"))
    return dest


VERIFIER_CONFIG = {"model_type": "llama", "hidden_size": H, "intermediate_size": 64, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "head_dim": 8, "num_hidden_layers": N_VERIFIER, "vocab_size": V,
                   "rms_norm_eps": 1e-6, "max_position_embeddings": 512, "rope_theta": 10000.0,
                   "tie_word_embeddings": False, "architectures": ["LlamaForCausalLM"]}


def verifier_for(seed: int = 0, dtype=torch.float32, scale: float = 1.0, config: dict = VERIFIER_CONFIG,
                 device: str = "cpu"):
    """A tiny random llama verifier (H 32, V 128, 6 layers) matching every builder variant."""
    from specfmt.verifier import Verifier

    wrapped = {"speculators_model_type": "independent", "transformer_layer_config": config,
               "speculators_config": VARIANTS["independent"]["speculators_config"]}
    tensors = {name: t * scale * 10 if t.is_floating_point() else t for name, t in tensors_for(wrapped, seed).items()}
    return Verifier.from_tensors(dict(config), tensors, device=device, dtype=dtype)


def write_verifier(path: Path, seed: int = 0, tokenizer: bool = False, config: dict = VERIFIER_CONFIG,
                   scale: float = 1.0) -> Path:
    """A Hugging Face checkpoint directory of the tiny verifier (and a word-level tokenizer.json); `scale` 5
    makes its next-token distributions peaked like a trained model's (mean top probability 0.79, not 0.01)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    verifier = verifier_for(seed, scale=scale, config=config)
    names = {"embed_tokens": "model.embed_tokens.weight", "norm": "model.norm.weight", "lm_head": "lm_head.weight"}
    tensors = {file_name: verifier.w[role] for role, file_name in names.items()}
    for i, layer in verifier.w["layer"].items():
        for role, t in layer.items():
            tensors[f"model.layers.{i}." + LAYER_FILE_NAMES[role]] = t
    write_tensors(path / "model.safetensors", tensors, {"format": "pt"})
    if tokenizer:
        from tokenizers import Tokenizer, models, pre_tokenizers

        tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(V)}, unk_token="w0"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.save(str(path / "tokenizer.json"))
    return path


LAYER_FILE_NAMES = {"input_layernorm": "input_layernorm.weight", "post_attention_layernorm":
                    "post_attention_layernorm.weight", "q_proj": "self_attn.q_proj.weight",
                    "k_proj": "self_attn.k_proj.weight", "v_proj": "self_attn.v_proj.weight",
                    "o_proj": "self_attn.o_proj.weight", "gate_proj": "mlp.gate_proj.weight",
                    "up_proj": "mlp.up_proj.weight", "down_proj": "mlp.down_proj.weight"}
