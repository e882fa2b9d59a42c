"""The research lineages of `--from eagle3-research` and how their layouts tell them apart, and the check that a
source directory holds a research EAGLE-3 draft at all (every other input is one SourceError line).

SafeAILab (eagle/model/cnets.py, modeling_llama_kv.py) and SpecForge (specforge/modeling/draft/llama3_eagle.py) name
the draft layer `midlayer`; the speculators repository's research code (research/eagle3, removed by speculators#177:
llama_eagle3_full_grad.py, modeling_llama_TTT_eagle3.py, ge_data/*.py, convert_checkpoint.py) saves `layers.0.*` with
`layers.0.hidden_norm`. Spec: spec/algorithms/eagle3.md
"""

from __future__ import annotations

import re

from specfmt.convert.common import Source, SourceError, aux_fallback
from specfmt.convert.research import research_config

SPECFORGE = "LlamaForCausalLMEagle3"  # SpecForge's draft class; SafeAILab configs say LlamaForCausalLM
SIZES = ("hidden_size", "intermediate_size", "num_attention_heads")  # no default can stand in for these
# The research lineages: whether layer 0 takes its residual after hidden_norm, the aux ids (CFG-9: id k = HF
# hidden_states[k]) it trains on for a verifier of N layers, where both are stated, and the layout that tells it.
# SafeAILab's capture points are the ones engines read for null ids, the schema's fallback.
LINEAGES = {
    "SafeAILab": (False, lambda n: aux_fallback("eagle3", n), "cnets.py adds the residual before hidden_norm; "
                  "modeling_llama_kv.py captures the inputs of verifier layers 2, N//2 and N-3",
                  "midlayer.* without LlamaForCausalLMEagle3"),
    "SpecForge": (False, lambda n: aux_fallback("eagle3", n), "llama3_eagle.py adds the residual before "
                  "hidden_norm; its default ids [1, N//2-1, N-4] count the outputs of the layers before 2, N//2 "
                  "and N-3",
                  "midlayer.* with architectures LlamaForCausalLMEagle3"),
    "speculators research": (True, lambda n: [3, n // 2 + 1, n - 2], "research/eagle3 adds hidden_norm(g) as the "
                             "residual and trains on HF hidden_states[3], [N//2 + 1] and [-3] (= [N-2])",
                             "one layer layers.0.* with layers.0.hidden_norm"),
}


def source_config(source: Source) -> dict:
    """The source's config.json (research.research_config), or a one-line SourceError for a directory whose tensors
    hold no research EAGLE-3 draft."""
    cfg = research_config(source, "a research EAGLE-3 draft")
    names = list(source.tensors)
    if {"hidden_norm.weight", "lm_head_layernorm.weight"} <= set(names):
        raise SourceError(f"{source.path}: the speculators research/eagle3 training state (hidden_norm.weight, "
                          "lm_head_layernorm.weight); run its convert_checkpoint.py first, which adds d2t and t2d "
                          "and names the norms layers.0.hidden_norm, layers.0.input_layernorm and norm")
    if "fc.weight" not in names or not any(re.match(r"(midlayer|layers)\.", n) for n in names):
        raise SourceError(f"{source.path}/{source.files[0] if source.files else ''}: no fc.weight and draft layer "
                          f"(midlayer.* or layers.0.*) among its {len(names)} tensors; not an EAGLE-3 research draft")
    return cfg


def lineage_of(cfg: dict, tensors: dict) -> str | None:
    """Which research code wrote the draft, from its layout: `midlayer.*` is SafeAILab's or SpecForge's (SpecForge
    names its class in architectures); one layer `layers.0.*` with `layers.0.hidden_norm` is the speculators research
    code's (its convert_checkpoint.py names it so); anything else (several layers.{i}) is unknown."""
    if any(n.startswith("midlayer.") for n in tensors):
        architectures = cfg.get("architectures")
        return "SpecForge" if isinstance(architectures, list) and SPECFORGE in architectures else "SafeAILab"
    stored = {m.group(1) for m in map(re.compile(r"layers\.(\d+)\.").match, tensors) if m}
    return "speculators research" if stored == {"0"} and "layers.0.hidden_norm.weight" in tensors else None
