"""What the two research converters (`--from eagle-research`, `--from eagle3-research`) share: reading a research
draft's config.json, whose sizes their code computes with, as one SourceError line when it is not one.

Spec: spec/algorithms/eagle.md, spec/algorithms/eagle3.md
"""

from __future__ import annotations

import json

from specfmt.convert.common import Source, SourceError

# The sizes a research config may state; each is a count, so a positive integer (JSON true is no count).
SIZE_KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
             "vocab_size", "draft_vocab_size", "num_hidden_layers", "target_hidden_size")


def research_config(source: Source, what: str) -> dict:
    """The source's config.json as a dict whose stated sizes are positive integers; `what` names the draft kind in
    the message for a directory without one."""
    cfg, where = source.config, f"{source.path}/config.json"
    if cfg is None:
        raise SourceError(f"{source.path}: no config.json; {what} ships its Llama config")
    if not isinstance(cfg, dict):
        raise SourceError(f"{where}: expected a JSON object, found {type(cfg).__name__}")
    if "speculators_model_type" in cfg:
        raise SourceError(f"{where}: a speculators checkpoint ({json.dumps(cfg['speculators_model_type'])}); "
                          "convert it with --from speculators")
    for key in SIZE_KEYS:
        value = cfg.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise SourceError(f"{where}: {key} is {json.dumps(value)}; expected a positive integer")
    return cfg
