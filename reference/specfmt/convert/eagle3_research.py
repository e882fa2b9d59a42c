"""`--from eagle3-research`: EAGLE-3 drafts of three research codes as strict eagle3 checkpoints, told apart by their
layout. SafeAILab (eagle/model/cnets.py `Model`, e.g. yuhuili/EAGLE3-LLaMA3.1-Instruct-8B) and SpecForge
(architectures ["LlamaForCausalLMEagle3"], the form SGLang serves) name the layer `midlayer.*`, take layer 0's residual
before hidden_norm and capture HF hidden_states[2], [N//2], [N-3]. The speculators repository's research code
(research/eagle3: llama_eagle3_full_grad.py, its convert_checkpoint.py) saves one layer `layers.0.*` with
`layers.0.hidden_norm`, float32 with bfloat16 fc/embed_tokens/lm_head, takes the residual after hidden_norm and
trains on HF hidden_states[3], [N//2 + 1], [-3] (= [N-2]). Other layouts (several `layers.{i}.*`) are refused until
--set states the residual order and the aux ids.

Read: config.json (the Llama keys, draft_vocab_size, target_hidden_size, eagle_config.eagle_aux_hidden_state_layer_ids,
fc_norm, norm_output, bias) and the tensors midlayer.* (one layer), midlayer.{i}.* or layers.{i}.* (several), fc,
norm, lm_head, d2t, t2d, embed_tokens, fc_norm.{a}, input_norm. Every layer is kept (the speculators converter keeps
only the first). A tensor no rule places stays under its own name, so the strict check names it rather than the
converter dropping it.
Spec: spec/algorithms/eagle3.md, spec/config.md#CFG-9
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
    VerifierFacts,
    finish,
    renamed,
)
from specfmt.convert.eagle3_lineage import LINEAGES, SIZES, SPECFORGE, lineage_of, source_config
from specfmt.envelope import envelope

# The schema's decoder keys, copied as the source states them; model_type and tie_word_embeddings are decided here.
LAYER_KEYS = tuple(k for k in common.LAYER_KEYS if k not in ("model_type", "tie_word_embeddings"))
READ = LAYER_KEYS + ("model_type", "architectures", "draft_vocab_size", "target_hidden_size", "eagle_config",
                     "eagle_aux_hidden_state_layer_ids", "fc_norm", "norm_output", "norm_before_residual",
                     "norm_before_fc", "bias", "tie_word_embeddings", "torch_dtype", "dtype")
LAYERS = [(r"midlayer\.(\d+)\.(.+)", r"layers.\1.\2"), (r"midlayer\.(.+)", r"layers.0.\1")]
DEFAULT_K = 3  # the speculators converter's speculative_tokens; the research code drafts a tree of depth 5
UNSUPPORTED = "no flag: v1 has no eagle3 variant that computes this"
AUX = "eagle_aux_hidden_state_layer_ids"
def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict eagle3 checkpoint of a research or SpecForge EAGLE-3 draft."""
    cfg, given, at = source_config(source), dict(given), f"{source.path}/config.json"
    decisions: list[Decision] = []
    refusals: list[Refusal] = []
    lineage = lineage_of(cfg, source.tensors)
    if lineage is not None:
        decisions.append(Decision("translated", "lineage", f"{lineage}: {LINEAGES[lineage][3]}"))
    kind = "given" if "speculative_tokens" in given else "default"
    k = given.pop("speculative_tokens", DEFAULT_K)
    decisions.append(Decision(kind, "speculators_config.proposal_methods[0].speculative_tokens", f"{k} (a greedy "
                              "chain; --set speculative_tokens=K states another)"))
    tensors, layers = _layers(source, cfg, given, decisions, refusals)
    layer = dict(_layer_config(cfg, at, verifier, given, decisions, refusals), num_hidden_layers=layers)
    _check_head_dim(layer, tensors, given, at, refusals)
    fields = {"transformer_layer_config": layer,
              "draft_vocab_size": _draft_vocab(cfg, tensors, layer["vocab_size"], given, decisions),
              AUX: _aux_ids(cfg, at, lineage, verifier.num_layers, given, decisions, refusals),
              **_flags(cfg, at, lineage, tensors, given, decisions, refusals)}
    fields["target_hidden_size"] = cfg.get("target_hidden_size")
    if "target_hidden_size" not in cfg:
        _decide(decisions, given, "default", "target_hidden_size", "null: the source states none, so the verifier "
                "is as wide as the draft (cnets.py sizes fc from hidden_size then)")
    _check_unrepresentable(cfg, at, tensors, source, refusals)
    dtype = _dtype(tensors, given, source, decisions)
    if any(r.pointer in [f"/{k}" for k in SIZES] for r in refusals):  # a size is absent: the layer cannot be built
        raise Refused(refusals)
    dropped = sorted(set(cfg) - set(READ))
    if dropped:
        decisions.append(Decision("dropped", "config keys", ", ".join(dropped) + ": read by no draft forward"))
    config = envelope("eagle3", verifier.config, verifier.name, k, dtype, **fields)
    return finish(config, tensors, decisions, given, str(source.path), verifier, refusals)


def _decide(decisions: list[Decision], given: dict, kind: str, subject: str, detail: str) -> None:
    """Record a decision, unless --set states the field (then apply_given records it as given)."""
    if subject not in given:
        decisions.append(Decision(kind, subject, detail))


def _layers(source: Source, cfg: dict, given: dict, decisions: list[Decision],
            refusals: list[Refusal]) -> tuple[dict, int]:
    """The tensors with every draft layer under layers.{i}, and the number of layers; refused when the stored
    layers and the config's num_hidden_layers disagree."""
    tensors = renamed(source.tensors, LAYERS, decisions)
    if len(tensors) != len(source.tensors):
        refusals.append(Refusal(source.files[0], "/midlayer", "midlayer.* and midlayer.0.* (or layers.0.*) name "
                                "the same layer twice", UNSUPPORTED))
    stored = sorted({int(m.group(1)) for m in map(re.compile(r"layers\.(\d+)\.").match, tensors) if m})
    key = "transformer_layer_config.num_hidden_layers"
    count = cfg.get("num_hidden_layers", len(stored))
    if "num_hidden_layers" not in cfg:
        _decide(decisions, given, "default", key, f"{count}: the layers stored (the config states none)")
    if key not in given and stored != list(range(count)):
        refusals.append(Refusal(source.files[0], "/midlayer", f"the stored draft layers {stored} do not match "
                                f"num_hidden_layers {count} of config.json", f"--set {key}=N"))
    return tensors, count


def _layer_config(cfg: dict, at: str, verifier: VerifierFacts, given: dict, decisions: list[Decision],
                  refusals: list[Refusal]) -> dict:
    """transformer_layer_config: the source's Llama keys, every default strict requires made explicit; an absent
    size is a refusal (each one, at once)."""
    layer = {"model_type": "llama", **{k: cfg[k] for k in LAYER_KEYS if k in cfg}}
    sizes = {k: given.get(f"transformer_layer_config.{k}", cfg.get(k)) for k in SIZES}
    refusals += [Refusal(at, f"/{k}", f"{k} is absent", f"--set transformer_layer_config.{k}=N")
                 for k, v in sizes.items() if v is None]
    if cfg.get("model_type", "llama") != "llama":
        decisions.append(Decision("translated", "transformer_layer_config.model_type",
                                  f'{json.dumps(cfg["model_type"])} -> "llama": the research codes build Llama layers '
                                  "whatever model_type says"))
    heads, width = sizes["num_attention_heads"], sizes["hidden_size"]
    defaults = {"vocab_size": (verifier.vocab_size, "the verifier's vocabulary"),
                "num_key_value_heads": (heads, "num_attention_heads, the Llama default"),
                "head_dim": (width // heads if width and heads else None, "hidden_size // num_attention_heads, the "
                             "Llama default"),
                "rms_norm_eps": (1e-6, "the Llama default"), "hidden_act": ("silu", "the Llama default"),
                "attention_bias": (False, "the Llama default")}
    for key, (value, why) in defaults.items():
        if key not in layer and value is not None:
            layer[key] = value
            _decide(decisions, given, "default", f"transformer_layer_config.{key}", f"{json.dumps(value)} ({why})")
    if "tie_word_embeddings" in cfg:
        layer["tie_word_embeddings"] = False
    if cfg.get("tie_word_embeddings"):
        decisions.append(Decision("translated", "transformer_layer_config.tie_word_embeddings", "true -> false: "
                                  "the draft's lm_head is its own [draft_vocab_size, hidden_size] matrix"))
    return layer


def _check_head_dim(layer: dict, tensors: dict, given: dict, at: str, refusals: list[Refusal]) -> None:
    """Layer 0's q_proj rows are num_attention_heads * head_dim. SpecForge and the speculators research code read a
    stated head_dim, SafeAILab's cnets.py ignores it (hidden_size // heads): the weights say which was used."""
    q, heads = tensors.get("layers.0.self_attn.q_proj.weight"), layer.get("num_attention_heads")
    head_dim = given.get("transformer_layer_config.head_dim", layer.get("head_dim"))
    if q is None or q.dim() != 2 or not heads or not head_dim or q.shape[0] == heads * head_dim:
        return
    refusals.append(Refusal(at, "/head_dim", f"head_dim is {head_dim}, but layer 0's q_proj has {q.shape[0]} rows "
                            f"for {heads} heads", f"--set transformer_layer_config.head_dim={q.shape[0] // heads}"))


def _draft_vocab(cfg: dict, tensors: dict, vocab: int, given: dict, decisions: list[Decision]) -> int:
    """draft_vocab_size; at the full vocabulary d2t and t2d go, as the research loader deletes them."""
    rows = tensors["lm_head.weight"].shape[0] if "lm_head.weight" in tensors else vocab
    size = cfg.get("draft_vocab_size", rows)
    if "draft_vocab_size" not in cfg:
        _decide(decisions, given, "default", "draft_vocab_size", f"{size}: the rows of lm_head.weight (the config "
                "states none; vLLM and SGLang read the full vocabulary then)")
    if size >= vocab:
        for name in ("d2t", "t2d"):
            if tensors.pop(name, None) is not None:
                decisions.append(Decision("dropped", name, "the draft vocabulary is the full vocabulary; the "
                                          "research loader deletes it (ea_model.py) and strict forbids it"))
    return size


def _aux_ids(cfg: dict, at: str, lineage: str | None, n: int, given: dict, decisions: list[Decision],
             refusals: list[Refusal]):
    """The aux ids in CFG-9's convention (id k: HF hidden_states[k], the residual stream entering verifier layer k)."""
    block = cfg.get("eagle_config") if isinstance(cfg.get("eagle_config"), dict) else {}
    ids = block.get(AUX, cfg.get(AUX))
    if AUX in given:
        return given[AUX]
    if ids is None and lineage is None:
        refusals.append(Refusal(at, f"/{AUX}", "no aux ids, and the layout names no research lineage whose capture "
                                "points are known", f"--set {AUX}=[...] (CFG-9 ids)"))
        return ids
    if ids is None:
        fallback = LINEAGES[lineage][1](n)
        decisions.append(Decision("translated", AUX, f"{fallback}: the source states none; {lineage}: "
                                  f"{LINEAGES[lineage][2]} (N = {n})"))
        return fallback
    if lineage == "SpecForge":
        decisions.append(Decision("translated", AUX, f"{ids} -> {[i + 1 for i in ids]}: SpecForge and SGLang "
                                  "number the output of layer X, CFG-9 the input of layer X+1"))
        return [i + 1 for i in ids]
    pointer = f"/eagle_config/{AUX}" if AUX in block else f"/{AUX}"
    refusals.append(Refusal(at, pointer, f"explicit aux ids {json.dumps(ids)} in a config that is not "
                            f"SpecForge's (architectures {json.dumps(cfg.get('architectures'))}): they may count "
                            "layer outputs (SGLang, SpecForge) or layer inputs (vLLM, CFG-9)",
                            f"--set {AUX}=[...] (CFG-9 ids)"))
    return ids


def _flags(cfg: dict, at: str, lineage: str | None, tensors: dict, given: dict, decisions: list[Decision],
           refusals: list[Refusal]) -> dict:
    """The four eagle3 flags, each stated: norm_before_residual from the lineage, the other three false in every
    research code unless the source says otherwise."""
    flags = {"norm_before_residual": cfg.get("norm_before_residual", LINEAGES[lineage][0] if lineage else None),
             "norm_before_fc": cfg.get("norm_before_fc", "input_norm.weight" in tensors),
             "fc_norm": bool(cfg.get("fc_norm", False))}
    key = "norm_before_residual"
    if key not in cfg and key not in given and lineage is None:
        refusals.append(Refusal(at, f"/{key}", "the layout names no research lineage, so whether layer 0 adds its "
                                "residual before or after hidden_norm is unknown", f"--set {key}=true|false"))
    elif key not in cfg and key not in given:
        _decide(decisions, given, "translated", key, f"{json.dumps(flags[key])}: {lineage}: {LINEAGES[lineage][2]}")
    if "norm_before_fc" not in cfg:
        _decide(decisions, given, "translated", "norm_before_fc", "true: input_norm.weight is stored" if
                flags["norm_before_fc"] else "false: no input_norm.weight; no research code norms before fc")
    if "fc_norm" not in cfg:
        _decide(decisions, given, "default", "fc_norm", "false: the source states none (SpecForge's default)")
    flags["norm_output"] = _norm_output(cfg, at, given, decisions, refusals)
    return flags


def _norm_output(cfg: dict, at: str, given: dict, decisions: list[Decision], refusals: list[Refusal]) -> bool:
    """SpecForge's norm_output says whether lm_head reads norm(h) (true, its default); the spec's says which state
    is fed back. Both codes feed back the pre-norm state, so the spec's value is false."""
    if "norm_output" in given:
        return given["norm_output"]
    if "norm_output" not in cfg:
        decisions.append(Decision("translated", "norm_output", "false: the research code feeds the pre-norm "
                                  "output back to the next step"))
        return False
    if SPECFORGE not in cfg.get("architectures", []):
        refusals.append(Refusal(at, "/norm_output", f"norm_output {json.dumps(cfg['norm_output'])} in a config "
                                "that is not SpecForge's: SpecForge reads it as 'lm_head reads norm(h)', vLLM as "
                                "'feed the post-norm state back'", "--set norm_output=true|false (the spec's meaning)"))
    elif cfg["norm_output"] is False:
        refusals.append(Refusal(at, "/norm_output", "SpecForge norm_output false: lm_head reads the state without "
                                "the final norm", UNSUPPORTED))
    else:
        decisions.append(Decision("translated", "norm_output", "SpecForge true (lm_head reads norm(h), as the spec "
                                  "does) -> false: SpecForge feeds the pre-norm output back"))
    return False


def _check_unrepresentable(cfg: dict, at: str, tensors: dict, source: Source, refusals: list[Refusal]) -> None:
    """What no strict eagle3 checkpoint computes: an fc bias (SGLang's `bias`), an embedding the spec cannot take
    from a verifier of another width."""
    if cfg.get("bias") or "fc.bias" in tensors:
        refusals.append(Refusal(at, "/bias", "fc carries a bias (SGLang's bias key); eagle3's fc has none",
                                UNSUPPORTED))
    width = cfg.get("target_hidden_size")
    if "embed_tokens.weight" not in tensors and width not in (None, cfg.get("hidden_size")):
        refusals.append(Refusal(source.files[0], "/embed_tokens.weight", f"embed_tokens is absent and the verifier "
                                f"is {width} wide, not {cfg.get('hidden_size')}: its embedding cannot stand in",
                                UNSUPPORTED))


def _dtype(tensors: dict, given: dict, source: Source, decisions: list[Decision]) -> str:
    """The config dtype: the float dtype of the tensors. Mixed ones (the speculators research code keeps fc,
    embed_tokens and lm_head in bfloat16, the rest in float32) are cast to the widest, which holds every value
    exactly, or to a --set dtype."""
    import torch

    names = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()})
    target = given.get("dtype") or (("float64" if "float64" in names else "float32") if len(names) > 1 else None)
    if target is not None:
        for name, t in tensors.items():
            if t.is_floating_point() and t.dtype != getattr(torch, target):
                tensors[name] = t.to(getattr(torch, target))
        why = "from --set" if "dtype" in given else "every value exactly (a lossless cast)"
        decisions.append(Decision("computed", "*", f"floating-point tensors {names} cast to {target}: {why}"))
        return target
    stated = source.config.get("torch_dtype", source.config.get("dtype"))
    if names and stated not in (None, names[0]):
        decisions.append(Decision("translated", "dtype", f"{names[0]}: the stored tensors' dtype (config.json "
                                  f"says {stated}, the dtype it was trained in)"))
    return names[0] if names else "float32"
