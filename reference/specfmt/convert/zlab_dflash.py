"""specfmt convert --from zlab-dflash: a z-lab DFlash draft (e.g. z-lab/Qwen3-8B-DFlash-b16) as a strict dflash
checkpoint.

z-lab ships a Qwen3 config with `block_size` (top level, or `dflash_config.block_size` in later drafts),
`dflash_config: {mask_token_id, target_layer_ids}`, `num_target_layers` and an `auto_map` to its own model code
(never run), and the weights `layers.*`, `fc`, `hidden_norm`, `norm`; the embedding and LM head are the verifier's.
Its context reads Hugging Face `hidden_states[id + 1]`, the output of verifier layer `id`, which is CFG-9 id `id + 1`.
Spec: spec/algorithms/dflash.md, spec/config.md#CFG-9
"""

from __future__ import annotations

import json
import re

from specfmt.convert.common import (
    Conversion,
    Decision,
    Refusal,
    Source,
    SourceError,
    VerifierFacts,
    finish,
    float_dtype,
)
from specfmt.envelope import envelope

CONFIG = "config.json"
NOT_LAYER = ("architectures", "auto_map", "block_size", "dflash_config", "num_target_layers")  # z-lab's own keys
DFLASH_KEYS = ("mask_token_id", "target_layer_ids", "block_size")
LAYOUT = (r"layers\.\d+\.(input_layernorm|post_attention_layernorm|self_attn\.[qk]_norm)\.weight",
          r"layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.(weight|bias)",
          r"(fc|hidden_norm|norm|embed_tokens|lm_head)\.weight")
FUSED_QKV = r"layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)"
NO_V1_EQUIVALENT = {  # tensors whose computation v1 dflash lacks: dropping them (as speculators does) changes the math
    r"layers\.\d+\.self_attn\.g_proj\..*": "a gate on the attention output (g_proj)",
    r"aux_hidden_norms\..*": "a norm of each aux state before fc (aux_hidden_norms)",
    r"mask_embed": "a learned embedding of the mask slots (mask_embed) in place of embed_tokens[mask_token_id]",
}


def block_size(cfg: dict, given: dict, where: str, refusals: list[Refusal], decisions: list[Decision]) -> int | None:
    """B from --set, the top level (earlier drafts) or dflash_config (later ones); never the schema default."""
    if "block_size" in given:
        return given["block_size"]
    for pointer, value in (("/block_size", cfg.get("block_size")),
                         ("/dflash_config/block_size", (cfg.get("dflash_config") or {}).get("block_size"))):
        if value is not None:
            decisions.append(Decision("translated", "block_size", f"{value} from {CONFIG}#{pointer}"))
            return value
    refusals.append(Refusal(where, "/block_size", "z-lab states the block size at the top level or in "
                            "dflash_config; neither holds it, and the schema default 8 may not be the trained one",
                            "--set block_size=B"))
    return None


def aux_ids(cfg: dict, verifier: VerifierFacts, given: dict, where: str, refusals: list[Refusal],
            decisions: list[Decision]) -> list[int] | None:
    """CFG-9 ids of z-lab's target_layer_ids: id + 1. z-lab's id N-1 reads hidden_states[N], which Hugging Face
    takes after the final norm, a state no CFG-9 id names. Spec: spec/config.md#CFG-9"""
    if "aux_hidden_state_layer_ids" in given:
        return None  # apply_given writes it
    source_ids = (cfg.get("dflash_config") or {}).get("target_layer_ids")
    if not isinstance(source_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                   for i in source_ids):
        refusals.append(Refusal(where, "/dflash_config/target_layer_ids", f"expected the list of verifier layers "
                                f"z-lab reads, found {json.dumps(source_ids)}",
                                "--set aux_hidden_state_layer_ids=[K,...] (CFG-9 ids: z-lab id + 1)"))
        return None
    n = verifier.num_layers
    beyond = [i for i in source_ids if not 0 <= i < n - 1]
    if beyond:
        refusals.append(Refusal(where, "/dflash_config/target_layer_ids", f"ids {json.dumps(beyond)} read Hugging Face "
                                f"hidden_states[id + 1] with id + 1 >= N = {n}: the state after the final norm (or "
                                f"none), which no aux id names (CFG-9); dropping it would change fc's input",
                                "a draft whose target_layer_ids lie below N - 1 (no flag converts this one)",
                                "convert.unsupported"))
        return None
    ids = [i + 1 for i in source_ids]
    decisions.append(Decision("translated", "aux_hidden_state_layer_ids", f"dflash_config.target_layer_ids "
                              f"{json.dumps(source_ids)} -> {json.dumps(ids)}: z-lab reads hidden_states[id + 1], the "
                              f"output of layer id, which CFG-9 names id + 1"))
    return ids


def layer_of(cfg: dict, verifier: VerifierFacts, given: dict, where: str, refusals: list[Refusal],
             decisions: list[Decision]) -> dict:
    """transformer_layer_config: the Qwen3 keys of z-lab's config, without z-lab's own keys."""
    layer = {k: v for k, v in cfg.items() if k not in NOT_LAYER}
    decisions += [Decision("dropped", key, "z-lab's own key: " + why) for key, why in (
        ("auto_map", "its model code, never run"), ("architectures", "z-lab's class name"),
        ("num_target_layers", "the verifier depth, checked against --verifier")) if key in cfg]
    depth = cfg.get("num_target_layers")
    if depth is not None and depth != verifier.num_layers:
        refusals.append(Refusal(where, "/num_target_layers", f"the draft was trained on a verifier of {depth} "
                                f"layers; --verifier has {verifier.num_layers}", "--verifier PATH (the draft's own "
                                "verifier)"))
    if "layer_types" not in layer and layer.get("use_sliding_window") and layer.get("sliding_window"):
        start = layer.get("max_window_layers", 0)  # Qwen3Config's derivation when layer_types is absent
        layer["layer_types"] = ["sliding_attention" if i >= start else "full_attention"
                                for i in range(layer.get("num_hidden_layers", 0))]
        decisions.append(Decision("translated", "transformer_layer_config.layer_types", "written out from "
                                  "use_sliding_window and max_window_layers as Qwen3Config derives them"))
    if "sliding_attention" in (layer.get("layer_types") or []) and "transformer_layer_config.layer_types" not in given:
        refusals.append(Refusal(where, "/layer_types", "z-lab hands sliding_window to the attention backend, "
                                "which flash-attention applies and sdpa/eager ignore; v1 applies it (ALG-DFLASH-6)",
                                "--set transformer_layer_config.layer_types=[...] (the layers as trained)"))
    return layer


def tensors_of(source: Source, layer: dict, refusals: list[Refusal], decisions: list[Decision]) -> dict:
    """The v1 tensors: z-lab's names already are v1's; a fused qkv_proj is split by rows into q, k, v (the head
    counts and width as the written config resolves them: the schema's defaults for what z-lab leaves out)."""
    from specfmt.defaults import resolve

    r = resolve({"speculators_model_type": "dflash", "transformer_layer_config": dict(layer)})
    r = r["transformer_layer_config"]
    out, fused, d = {}, 0, r["head_dim"]
    rows = [r["num_attention_heads"] * d] + [r["num_key_value_heads"] * d] * 2
    for name, t in source.tensors.items():
        m = re.fullmatch(FUSED_QKV, name)
        if m is not None and t.shape[0] == sum(rows):
            fused += 1
            for part, piece in zip("qkv", t.split(rows, 0), strict=True):  # [(n_h+2n_kv)d, H] -> [n_h d, H], ...
                out[f"layers.{m[1]}.self_attn.{part}_proj.{m[2]}"] = piece.contiguous()
            continue
        why = next((why for pattern, why in NO_V1_EQUIVALENT.items() if re.fullmatch(pattern, name)), None)
        if why is not None or not any(re.fullmatch(p, name) for p in LAYOUT):
            refusals.append(Refusal(name, "", f"{why or 'a tensor outside the dflash layout'}: v1 dflash has no "
                                    "such computation, and leaving it out would change the draft's output",
                                    "a draft without it (no flag converts this one)", "convert.unsupported"))
            continue
        out[name] = t
    if fused:
        decisions.append(Decision("computed", "layers.*.self_attn.qkv_proj", f"{fused} fused tensors split by rows "
                                  f"into q_proj, k_proj, v_proj ({json.dumps(rows)})"))
    return out


def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict dflash config and tensors of a z-lab DFlash draft. Spec: spec/algorithms/dflash.md"""
    if source.config is None:
        raise SourceError(f"{source.path}: a z-lab DFlash draft has a config.json; none found")
    cfg, decisions, refusals, where = source.config, [], [], f"{source.path}/{CONFIG}"
    unknown = {k: v for k, v in (cfg.get("dflash_config") or {}).items() if k not in DFLASH_KEYS and v}
    if unknown:
        refusals.append(Refusal(where, "/dflash_config", f"settings {json.dumps(unknown)} change the draft's "
                                "computation, and v1 dflash has no equivalent", "a draft without them (no flag "
                                "converts this one)", "convert.unsupported"))
    b = block_size(cfg, given, where, refusals, decisions)
    ids = aux_ids(cfg, verifier, given, where, refusals, decisions)
    layer = layer_of(cfg, verifier, given, where, refusals, decisions)
    tensors = tensors_of(source, layer, refusals, decisions)
    h, mask = layer["hidden_size"], (cfg.get("dflash_config") or {}).get("mask_token_id")
    fields = {"transformer_layer_config": layer, "draft_vocab_size": layer["vocab_size"], "block_size": b or 2,
              "target_hidden_size": None if verifier.hidden_size == h else verifier.hidden_size,
              "aux_hidden_state_layer_ids": ids or [0],  # placeholders stand where a refusal already speaks
              "sliding_window_non_causal": True, "sample_from_anchor": False}
    if mask is not None:
        fields["mask_token_id"] = mask
        decisions.append(Decision("translated", "mask_token_id", f"{mask} from dflash_config.mask_token_id"))
    decisions += [
        Decision("default", "draft_vocab_size", f"{layer['vocab_size']} (= vocab_size): z-lab drafts over the "
                 "verifier's whole vocabulary through its LM head"),
        Decision("default", "sample_from_anchor", "false: z-lab reads slots 1..B-1; slot 0 holds the anchor"),
        Decision("computed", "speculators_config.proposal_methods[0].speculative_tokens",
                 f"{(b or 2) - 1} = block_size - 1, the predicting slots"),
        Decision("translated", "sliding_window_non_causal", "true: z-lab's block attention is bidirectional "
                 "(is_causal = False); with full_attention layers only, the flag changes nothing"),
        Decision("default", "target_hidden_size", f"{json.dumps(fields['target_hidden_size'])} (the verifier's "
                 "hidden size, null when it is H)")]
    decisions += [Decision("default", name, "not stored: the verifier's is used (ALG-DFLASH-5), as z-lab does")
                  for name in ("embed_tokens.weight", "lm_head.weight") if name not in tensors]
    dtype = float_dtype(tensors, str(source.path))
    config = envelope("dflash", verifier.config, verifier.name, (b or 2) - 1, dtype, **fields)
    return finish(config, tensors, decisions, given, str(source.path), verifier, refusals)
