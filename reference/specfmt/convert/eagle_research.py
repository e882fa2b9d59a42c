"""--from eagle-research: SafeAILab EAGLE-1/EAGLE-2 and HASS research checkpoints as a strict `eagle` checkpoint.

The source is a directory with a Llama-style config.json (plus `bias`, the fc bias flag that the research code reads
as true when absent, and `qkv_bias`) and pytorch_model.bin (read with weights_only=True) or model.safetensors. Its
tensors are fc.{weight,bias} over cat(embedding, feature), one decoder layer layers.0.* without an input norm, an
optional copy of the verifier's embed_tokens, and the extra norms: embed_layernorm (or post_embedding_layernorm) on
the embedding and lm_head_layernorm before the head, which v1 carries, and hidden_layernorm, which the HASS research
code (speculators research/hass, Model.forward) applies to the verifier feature BEFORE fc while layer 0 keeps no
input norm: v1 has no norm there (its transformer.input_layernorm normalises fc's output), so such a file is refused.
Upstream: SafeAILab/EAGLE eagle/model/cnets1.py (Model, LlamaDecoderLayer with index 0), ea_model.py (bias);
speculators research/hass (the norms, config.head_dim). Spec: spec/algorithms/eagle.md
"""

from __future__ import annotations

import json
import re

from specfmt.convert import common
from specfmt.convert.common import (
    Conversion,
    Decision,
    Refusal,
    Refused,
    Source,
    SourceError,
    VerifierFacts,
    finish,
    float_dtype,
    renamed,
    some_names,
)
from specfmt.convert.research import research_config
from specfmt.envelope import envelope

SPECULATIVE_TOKENS = 3  # the research code proposes trees; speculators' converter writes a chain of 3 (#146)
QKV_BIAS = tuple(f"layers.0.self_attn.{p}_proj.bias" for p in "qkv")
# The three extra norms of v1's `layernorms`, by role: the source names each may carry. A decoder layer's own
# input_layernorm normalises the layer's input, fc's output, as v1's transformer.input_layernorm does.
NORMS = {"embedding": ("embed_layernorm.weight", "post_embedding_layernorm.weight"),
         "input": ("layers.0.input_layernorm.weight",),
         "pre_lm_head": ("lm_head_layernorm.weight",)}
FEATURE_NORM = "hidden_layernorm.weight"  # HASS research: RMSNorm of the verifier feature before fc
NO_FLAG = "no flag: no v1 eagle checkpoint computes this draft"
KNOWN = re.compile(r"fc\.(weight|bias)|embed_tokens\.weight|(embed|post_embedding|hidden|lm_head)_layernorm\.weight"
                   r"|layers\.0\.(self_attn\.[qkvo]_proj\.(weight|bias)|mlp\.(gate|up|down)_proj\.weight"
                   r"|(input|post_attention)_layernorm\.weight)")
RULES = [(r"fc\.(weight|bias)", r"fusion_fc.\1"),
         (r"layers\.0\.(.+)", r"transformer.\1"),
         (r"(?:embed|post_embedding)_layernorm\.weight", "embedding_layernorm.weight"),
         (r"lm_head_layernorm\.weight", "pre_lm_head_layernorm.weight")]
# Research configs leave these out; the values are what the research code (a transformers LlamaConfig) then uses.
LAYER_DEFAULTS = {"rms_norm_eps": (1e-6, "absent, the research code's default"),
                  "rope_theta": (10000.0, "absent, the research code's default"),
                  "hidden_act": ("silu", "absent, the research code's default")}
# The schema's decoder keys a research config states, copied as stated: the converter decides model_type and
# num_hidden_layers, and the research layer reads neither attention_bias nor mlp_bias (its biases are qkv_bias's).
DECIDED, UNREAD = ("model_type", "num_hidden_layers"), ("tie_word_embeddings", "attention_bias", "mlp_bias")
LAYER_KEYS = tuple(k for k in common.LAYER_KEYS if k not in DECIDED + UNREAD)


def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict `eagle` checkpoint of a research EAGLE-1/2 or HASS directory. Spec: spec/algorithms/eagle.md"""
    cfg, where = research_config(source, "an EAGLE research checkpoint"), f"{source.path}/config.json"
    tensors, decisions, refusals = dict(source.tensors), [], []
    check_names(tensors, source)
    if tensors.pop("embed_tokens.weight", None) is not None:
        decisions.append(Decision("dropped", "embed_tokens.weight", "a copy of the verifier's embedding (the research "
                                  "code loads the verifier's); v1 reads the verifier's own (ALG-EAGLE-5)"))
    fusion_bias = fc_bias(cfg, tensors, given, where, decisions, refusals)
    family = attention_family(cfg, tensors, given, where, decisions, refusals)
    layernorms = extra_norms(tensors, given, f"{source.path}/{source.files[0]}", decisions, refusals)
    layer = layer_config(cfg, family, verifier, given, where, decisions, refusals)
    check_head_dim(layer, tensors, given, where, refusals)
    if not layer:  # a size is absent: nothing more can be built or checked
        raise Refused(refusals)
    dtype = float_dtype(tensors, str(source.path))
    decisions.append(Decision("default", "speculators_config.proposal_methods[0].speculative_tokens",
                              f"{SPECULATIVE_TOKENS}: research checkpoints state no chain length (they propose trees); "
                              "3 is what the speculators converter writes"))
    config = envelope("eagle", verifier.config, verifier.name, SPECULATIVE_TOKENS, dtype,
                      transformer_layer_config=layer, transformer_layer_architecture="LlamaDecoderLayer",
                      layernorms=layernorms, fusion_bias=fusion_bias)
    tensors = renamed(tensors, RULES, decisions)
    return finish(config, tensors, decisions, given, str(source.path), verifier, refusals)


def check_names(tensors: dict, source: Source) -> None:
    """Every tensor is one the research layout has; a second decoder layer has no place in v1's eagle."""
    weights = f"{source.path}/{source.files[0] if source.files else ''}"
    extra = sorted(n for n in tensors if re.match(r"layers\.[1-9]", n))
    if extra:
        raise SourceError(f"{weights}: {extra[0]} belongs to a second draft layer; v1's eagle has exactly one "
                          "decoder layer (ALG-EAGLE-1)")
    unknown = sorted(n for n in tensors if not KNOWN.fullmatch(n))
    if unknown:
        raise SourceError(f"{weights}: {some_names(unknown)} are not tensors of an EAGLE-1/2 or HASS "
                          "checkpoint; expected fc.*, layers.0.*, embed_tokens.weight and the HASS norms")


def fc_bias(cfg: dict, tensors: dict, given: dict, where: str, decisions: list, refusals: list) -> bool:
    """fusion_bias from fc.bias, checked against the config's `bias`. Absent, it reads as true (ea_model.py builds
    fc with bias=True unless the config says otherwise, and loads with strict=False), except in a file of the HASS
    research code (hidden_layernorm stored), whose Model builds fc with bias=False whatever the config says."""
    has, stated = "fc.bias" in tensors, cfg.get("bias")
    if "fusion_bias" in given:
        if given["fusion_bias"] and not has:
            raise SourceError(f"{where}: --set fusion_bias=true, but the weights hold no fc.bias")
        if not given["fusion_bias"] and tensors.pop("fc.bias", None) is not None:
            decisions.append(Decision("dropped", "fc.bias", "--set fusion_bias=false"))
        return bool(given["fusion_bias"])
    default = FEATURE_NORM not in tensors
    read = default if stated is None else bool(stated)
    if read != has:
        said = "absent, which the research code reads as true" if stated is None else json.dumps(stated)
        effect = "start fc from a randomly initialised bias" if read else "ignore the stored fc.bias"
        refusals.append(Refusal(where, "/bias", f"bias is {said}, but fc.bias is {'present' if has else 'absent'}; "
                                f"the research code would {effect}, so the intended bias is unknown",
                                "--set fusion_bias=true|false"))
        return has
    said = f"absent (the {'EAGLE' if default else 'HASS'} research code reads it as {json.dumps(default)})" \
        if stated is None else json.dumps(stated)
    decisions.append(Decision("default" if stated is None else "translated", "fusion_bias",
                              f"{json.dumps(has)}: config.json bias is {said} and fc.bias is "
                              f"{'present' if has else 'absent'}"))
    return has


def attention_family(cfg: dict, tensors: dict, given: dict, where: str, decisions: list, refusals: list) -> str:
    """The v1 decoder family: q/k/v biases without an o_proj bias (research `qkv_bias`) are the qwen2 layer,
    none are the llama layer. cnets1.py builds the biases only when the config has qkv_bias."""
    present = [n for n in QKV_BIAS if n in tensors]
    if present and len(present) != len(QKV_BIAS):
        raise SourceError(f"{where}: the weights hold {present} but not all of {list(QKV_BIAS)}")
    has, stated = bool(present), bool(cfg.get("qkv_bias", False))
    want = given.get("transformer_layer_config.model_type")
    if want is not None:
        if want == "qwen2" and not has:
            raise SourceError(f"{where}: --set transformer_layer_config.model_type=qwen2, but the weights hold no "
                              "q/k/v biases")
        if want != "qwen2" and has:
            for name in QKV_BIAS:
                del tensors[name]
            decisions.append(Decision("dropped", "layers.0.self_attn.{q,k,v}_proj.bias",
                                      f"--set transformer_layer_config.model_type={want}"))
        return want
    if stated != has:
        refusals.append(Refusal(where, "/qkv_bias", f"qkv_bias is {json.dumps(cfg.get('qkv_bias'))}, but the "
                                f"q/k/v biases are {'present' if has else 'absent'}; the intended attention is unknown",
                                "--set transformer_layer_config.model_type=llama|qwen2"))
    family = "qwen2" if has else "llama"
    if family != cfg.get("model_type"):
        decisions.append(Decision("translated", "transformer_layer_config.model_type",
                                  f"{json.dumps(cfg.get('model_type'))} -> \"{family}\": the layer has "
                                  f"{'q/k/v biases and no o_proj bias' if has else 'no attention bias'}"))
    return family


def extra_norms(tensors: dict, given: dict, weights: str, decisions: list, refusals: list) -> bool:
    """layernorms: all three extra norms present (speculators v0.2 detects them by the embedding norm), none, or
    a refusal; --set layernorms=false drops the ones found. hidden_layernorm is refused whatever is set: the HASS
    research code normalises the verifier feature with it before fc, which no v1 eagle computes."""
    if FEATURE_NORM in tensors:
        refusals.append(Refusal(weights, f"/{FEATURE_NORM}", f"{FEATURE_NORM} normalises the verifier feature "
                                "before fc (HASS research: fc(cat(embed_layernorm(E[x]), hidden_layernorm(f))), layer "
                                "0 without an input norm); v1's eagle has no norm there, its "
                                "transformer.input_layernorm normalises fc's output", NO_FLAG))
    found = {role: [n for n in names if n in tensors] for role, names in NORMS.items()}
    doubled = [names for names in found.values() if len(names) > 1]
    if doubled:
        raise SourceError(f"{weights}: {doubled[0]} are two names for one norm")
    present = [names[0] for names in found.values() if names]
    if not present or given.get("layernorms") is False:
        for name in present:
            del tensors[name]
            decisions.append(Decision("dropped", name, "--set layernorms=false"))
        if not present and given.get("layernorms"):
            raise SourceError(f"{weights}: --set layernorms=true, but the weights hold none of the extra norms")
        if "layernorms" not in given:
            decisions.append(Decision("translated", "layernorms", "false: the weights hold no extra norm"))
        return False
    missing = [NORMS[role][0] for role, names in found.items() if not names]
    if missing and FEATURE_NORM not in tensors:  # with hidden_layernorm, its own refusal says why
        refusals.append(Refusal(weights, "", f"the extra norms are incomplete: {present} present, {missing} absent; "
                                "v1 eagle carries all three or none", "--set layernorms=false (drops the ones found)"))
    if missing:
        return False
    if "layernorms" not in given:
        decisions.append(Decision("translated", "layernorms", f"true: the weights hold {present}"))
    return True


def layer_config(cfg: dict, family: str, verifier: VerifierFacts, given: dict, where: str, decisions: list,
                 refusals: list) -> dict:
    """transformer_layer_config: the research config's decoder keys, each value the research code would use; every
    absent size and every disagreement with the verifier is a refusal, all of them at once."""
    missing = [k for k in ("hidden_size", "intermediate_size", "num_attention_heads", "vocab_size") if k not in cfg]
    refusals += [Refusal(where, f"/{k}", f"{k} is absent", f"--set transformer_layer_config.{k}=N") for k in missing]
    for key, fact in (("hidden_size", verifier.hidden_size), ("vocab_size", verifier.vocab_size)):
        if key in cfg and cfg[key] != fact:
            refusals.append(Refusal(where, f"/{key}", f"{key} is {cfg[key]}, the verifier's is {fact}",
                                    f"--verifier PATH (a verifier with {key} {cfg[key]})"))
    if missing:
        return {}
    if cfg.get("num_hidden_layers", 1) != 1:
        raise SourceError(f"{where}: num_hidden_layers is {cfg['num_hidden_layers']}; v1's eagle has exactly one "
                          "decoder layer (ALG-EAGLE-1)")
    layer = {k: cfg[k] for k in LAYER_KEYS if cfg.get(k) is not None}
    layer.update(model_type=family, num_hidden_layers=1)
    filled = {**LAYER_DEFAULTS, "num_key_value_heads": (cfg["num_attention_heads"], "absent, the research code's "
                                                        "default (num_attention_heads)"),
              "head_dim": (cfg["hidden_size"] // cfg["num_attention_heads"], "absent: both research attentions "
                           "then use hidden_size // num_attention_heads"),
              **({"attention_bias": (False, "the research attention has no o_proj bias")} if family == "llama" else {})}
    for key, (value, why) in filled.items():
        if key not in layer:
            layer[key] = value
            if f"transformer_layer_config.{key}" not in given:  # a --set value is recorded once, as given
                decisions.append(Decision("default", f"transformer_layer_config.{key}", f"{json.dumps(value)}: {why}"))
    return layer


def check_head_dim(layer: dict, tensors: dict, given: dict, where: str, refusals: list) -> None:
    """The q_proj rows are num_attention_heads * head_dim: a stated head_dim (the HASS research attention reads
    config.head_dim) the weights contradict is refused, naming the value they hold (SafeAILab cnets1.py ignores
    a stated head_dim and uses hidden_size // num_attention_heads)."""
    q = tensors.get("layers.0.self_attn.q_proj.weight")
    if q is None or not layer or q.dim() != 2:
        return
    heads = layer["num_attention_heads"]
    head_dim = given.get("transformer_layer_config.head_dim", layer["head_dim"])
    if q.shape[0] != heads * head_dim:
        refusals.append(Refusal(where, "/head_dim", f"head_dim is {head_dim}, but q_proj has {q.shape[0]} rows for "
                                f"{heads} heads", f"--set transformer_layer_config.head_dim={q.shape[0] // heads}"))
