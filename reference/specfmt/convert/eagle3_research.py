"""`--from eagle3-research`: EAGLE-3 drafts of the SafeAILab research code (eagle/model/cnets.py `Model`, e.g.
yuhuili/EAGLE3-LLaMA3.1-Instruct-8B) and of SpecForge (architectures ["LlamaForCausalLMEagle3"], the form SGLang
serves) as strict eagle3 checkpoints.

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

from specfmt.convert.common import (
    Conversion,
    Decision,
    Refusal,
    Refused,
    Source,
    SourceError,
    VerifierFacts,
    apply_given,
    renamed,
)
from specfmt.envelope import envelope

SPECFORGE = "LlamaForCausalLMEagle3"  # SpecForge's draft class; SafeAILab configs say LlamaForCausalLM
LAYER_KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
              "num_hidden_layers", "vocab_size", "rms_norm_eps", "hidden_act", "attention_bias", "mlp_bias",
              "rope_theta", "rope_scaling", "rope_parameters", "max_position_embeddings")
READ = LAYER_KEYS + ("model_type", "architectures", "draft_vocab_size", "target_hidden_size", "eagle_config",
                     "eagle_aux_hidden_state_layer_ids", "fc_norm", "norm_output", "norm_before_residual",
                     "norm_before_fc", "bias", "tie_word_embeddings", "torch_dtype", "dtype")
LAYERS = [(r"midlayer\.(\d+)\.(.+)", r"layers.\1.\2"), (r"midlayer\.(.+)", r"layers.0.\1")]
DEFAULT_K = 3  # the speculators converter's speculative_tokens; the research code drafts a tree of depth 5
UNSUPPORTED = "no flag: v1 has no eagle3 variant that computes this"


def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict eagle3 checkpoint of a research or SpecForge EAGLE-3 draft."""
    if source.config is None:
        raise SourceError(f"{source.path}: no config.json; a research EAGLE-3 draft ships its Llama config")
    cfg, given, at = source.config, dict(given), f"{source.path}/config.json"
    decisions: list[Decision] = []
    refusals: list[Refusal] = []
    kind = "given" if "speculative_tokens" in given else "default"
    k = given.pop("speculative_tokens", DEFAULT_K)
    decisions.append(Decision(kind, "speculators_config.proposal_methods[0].speculative_tokens", f"{k} (a greedy "
                              "chain; --set speculative_tokens=K states another)"))
    tensors, layers = _layers(source, cfg, given, decisions, refusals)
    layer = dict(_layer_config(cfg, verifier, given, decisions), num_hidden_layers=layers)
    fields = {"transformer_layer_config": layer,
              "draft_vocab_size": _draft_vocab(cfg, tensors, layer["vocab_size"], given, decisions),
              "eagle_aux_hidden_state_layer_ids": _aux_ids(cfg, at, verifier.num_layers, given, decisions,
                                                           refusals),
              **_flags(cfg, at, tensors, given, decisions, refusals)}
    fields["target_hidden_size"] = cfg.get("target_hidden_size")
    if "target_hidden_size" not in cfg:
        _decide(decisions, given, "default", "target_hidden_size", "null: the source states none, so the verifier "
                "is as wide as the draft (cnets.py sizes fc from hidden_size then)")
    _check_unrepresentable(cfg, at, tensors, source, refusals)
    dtype = _dtype(tensors, given, source, decisions, refusals)
    if refusals:
        raise Refused(refusals)
    dropped = sorted(set(cfg) - set(READ))
    if dropped:
        decisions.append(Decision("dropped", "config keys", ", ".join(dropped) + ": read by no draft forward"))
    config = envelope("eagle3", verifier.config, verifier.name, k, dtype, **fields)
    return Conversion(apply_given(config, given, decisions), tensors, decisions)


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


def _layer_config(cfg: dict, verifier: VerifierFacts, given: dict, decisions: list[Decision]) -> dict:
    """transformer_layer_config: the source's Llama keys, every default strict requires made explicit."""
    layer = {"model_type": "llama", **{k: cfg[k] for k in LAYER_KEYS if k in cfg}}
    if cfg.get("model_type", "llama") != "llama":
        decisions.append(Decision("translated", "transformer_layer_config.model_type",
                                  f'{json.dumps(cfg["model_type"])} -> "llama": both codes build Llama layers '
                                  "whatever model_type says"))
    defaults = {"vocab_size": (verifier.vocab_size, "the verifier's vocabulary"),
                "num_key_value_heads": (layer["num_attention_heads"], "num_attention_heads, the Llama default"),
                "head_dim": (layer["hidden_size"] // layer["num_attention_heads"], "hidden_size // "
                             "num_attention_heads, the Llama default"),
                "rms_norm_eps": (1e-6, "the Llama default"), "hidden_act": ("silu", "the Llama default"),
                "attention_bias": (False, "the Llama default")}
    for key, (value, why) in defaults.items():
        if key not in layer:
            layer[key] = value
            _decide(decisions, given, "default", f"transformer_layer_config.{key}", f"{json.dumps(value)} ({why})")
    if "tie_word_embeddings" in cfg:
        layer["tie_word_embeddings"] = False
    if cfg.get("tie_word_embeddings"):
        decisions.append(Decision("translated", "transformer_layer_config.tie_word_embeddings", "true -> false: "
                                  "the draft's lm_head is its own [draft_vocab_size, hidden_size] matrix"))
    return layer


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


def _aux_ids(cfg: dict, at: str, n: int, given: dict, decisions: list[Decision], refusals: list[Refusal]):
    """The aux ids in CFG-9's convention (id k: the residual stream entering verifier layer k)."""
    key = "eagle_aux_hidden_state_layer_ids"
    ids = (cfg.get("eagle_config") or {}).get(key, cfg.get(key))
    specforge = SPECFORGE in cfg.get("architectures", [])
    if key in given:
        return given[key]
    if ids is None:
        fallback = [2, n // 2, n - 3]
        decisions.append(Decision("translated", key, f"{fallback}: the source states none; SafeAILab captures "
                                  "the inputs of verifier layers 2, N//2 and N-3 and SpecForge the outputs of "
                                  f"layers 1, N//2-1 and N-4, the same states (the CFG-9 fallback, N = {n})"))
        return fallback
    if specforge:
        decisions.append(Decision("translated", key, f"{ids} -> {[i + 1 for i in ids]}: SpecForge and SGLang "
                                  "number the output of layer X, CFG-9 the input of layer X+1"))
        return [i + 1 for i in ids]
    pointer = "/eagle_config/" + key if key in (cfg.get("eagle_config") or {}) else "/" + key
    refusals.append(Refusal(at, pointer, f"explicit aux ids {json.dumps(ids)} in a config that is not "
                            f"SpecForge's (architectures {json.dumps(cfg.get('architectures'))}): they may count "
                            "layer outputs (SGLang, SpecForge) or layer inputs (vLLM, CFG-9)",
                            f"--set {key}=[...] (CFG-9 ids)"))
    return ids


def _flags(cfg: dict, at: str, tensors: dict, given: dict, decisions: list[Decision],
           refusals: list[Refusal]) -> dict:
    """The four eagle3 flags, each stated: the research math is false for all four."""
    flags = {"norm_before_residual": cfg.get("norm_before_residual", False),
             "norm_before_fc": cfg.get("norm_before_fc", "input_norm.weight" in tensors),
             "fc_norm": bool(cfg.get("fc_norm", False))}
    if "norm_before_residual" not in cfg:
        _decide(decisions, given, "translated", "norm_before_residual", "false: the research layer (and "
                "SpecForge's) takes its residual before hidden_norm")
    if "norm_before_fc" not in cfg:
        _decide(decisions, given, "translated", "norm_before_fc", "true: input_norm.weight is stored" if
                flags["norm_before_fc"] else "false: no input_norm.weight; neither code norms before fc")
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


def _dtype(tensors: dict, given: dict, source: Source, decisions: list[Decision], refusals: list[Refusal]) -> str:
    """The config dtype: the float dtype of the tensors; mixed ones are cast only to a --set dtype."""
    import torch

    names = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()})
    if "dtype" in given:
        target = getattr(torch, given["dtype"])
        for name, t in tensors.items():
            if t.is_floating_point() and t.dtype != target:
                tensors[name] = t.to(target)
        decisions.append(Decision("computed", "*", f"floating-point tensors {names} cast to {given['dtype']}"))
        return given["dtype"]
    if len(names) > 1:
        refusals.append(Refusal(source.files[0], "", f"the floating-point tensors mix dtypes {names}",
                                "--set dtype=NAME (every float tensor is cast to it)"))
    stated = source.config.get("torch_dtype", source.config.get("dtype"))
    if names and stated not in (None, names[0]):
        decisions.append(Decision("translated", "dtype", f"{names[0]}: the stored tensors' dtype (config.json "
                                  f"says {stated}, the dtype it was trained in)"))
    return names[0] if names else "float32"
