"""The config facts a reader computes with, checked before it does: a converter's source (convert.common.read_source,
the MTP reader) and a verifier the runtime loads. A size that is a string, a boolean, infinite, zero or negative,
or larger than the weights on disk can hold, is one finding, never a traceback or an exhausted memory.

Spec: spec/config.md#CFG-2
"""

from __future__ import annotations

import math
from typing import Any

from specfmt.config_checks import is_int
from specfmt.findings import Finding, finding, mismatch, pointer, under
from specfmt.layout import MAX_LOOP

# Sizes of a Hugging Face-style config: field -> least value. A width no stored tensor can hold (more than the
# elements on disk) is refused before any arithmetic or allocation uses it; so is a count of layers, heads or stages
# over the layout loop bound (GEN-6), or over the tensors on disk where the caller knows each counted item stores
# its own (a verifier's layers: a research draft's config may carry its verifier's layer count, tied stages share).
WIDTHS = {"hidden_size": 1, "intermediate_size": 1, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 1,
          "vocab_size": 1, "draft_vocab_size": 1, "target_hidden_size": 1, "emb_dim": 1, "inner_dim": 0}
COUNTS = {"num_hidden_layers": 1, "n_predict": 1, "medusa_num_heads": 1, "medusa_num_layers": 0,
          "num_nextn_predict_layers": 0}
POSITIVE = {"max_position_embeddings": 1, "block_size": 1, "num_target_layers": 1}  # no tensor holds these
REALS = ("rms_norm_eps", "layer_norm_eps", "rope_theta")
NESTED = ("text_config", "transformer_layer_config")
ROPE = ("rope_scaling", "rope_parameters")  # objects whose numbers RoPE computes with (spec/verifier.md#VFR-9)
ROPE_NUMBERS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "rope_theta")


def reader_facts(config: dict, file: str, tensors: int | None = None, elements: int | None = None) -> list[Finding]:
    """Every size of `config` (and of its text_config or transformer_layer_config) that a reader computes with:
    an integer (not a boolean, a string or a float) at least its least value, within what the weights on disk hold
    (`elements` elements in all, when known; counts within the layout loop bound and, where given, `tensors`); the
    real-valued facts finite numbers. A null is left to the reader (an absent value). Spec: spec/config.md#CFG-2"""
    out: list[Finding] = []
    nodes = [((), config)] + [((k,), config[k]) for k in NESTED if isinstance(config.get(k), dict)]
    for prefix, node in nodes:
        for key, value in node.items():
            where = pointer(*prefix, key)
            if value is None:
                continue
            if key in REALS and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                     and math.isfinite(value)):
                out.append(finding("config.type", file, where, mismatch(key, "a finite number", value), found=value))
            elif key in ROPE:
                out += _rope(where, value, file)
            elif key in WIDTHS or key in COUNTS or key in POSITIVE:
                bound, what = (elements, "the elements the weights hold") if key in WIDTHS else (None, "")
                if key in COUNTS:
                    bound, what = ((tensors, "the tensors the weights hold") if tensors and tensors < MAX_LOOP
                                   else (MAX_LOOP, "the layout loop bound, GEN-6"))
                out += _size(key, where, value, {**WIDTHS, **COUNTS, **POSITIVE}[key], bound, what, file)
    return under(out, "strict")  # a reader refuses what it cannot read: strict alone


def _size(key: str, where: str, value: Any, least: int, bound: int | None, what: str, file: str) -> list[Finding]:
    if not is_int(value):
        return [finding("config.type", file, where, mismatch(key, "an integer", value),
                        found=value)]
    if value < least:
        return [finding("config.range", file, where, mismatch(key, f">= {least}", value),
                        found=value)]
    if bound is not None and value > bound:
        held = f"<= {bound} ({what})"
        return [finding("config.range", file, where, mismatch(key, held, value), found=value)]
    return []


def _rope(where: str, value: Any, file: str) -> list[Finding]:
    if not isinstance(value, dict):
        return [finding("config.type", file, where, mismatch(where.rsplit("/", 1)[-1], "an object or null", value),
                        found=value)]
    return [finding("config.type", file, f"{where}/{key}", mismatch(key, "a finite number > 0", value[key]),
                    found=value[key])
            for key in ROPE_NUMBERS if key in value and not (
                isinstance(value[key], (int, float)) and not isinstance(value[key], bool)
                and math.isfinite(value[key]) and value[key] > 0)]


def check_reader_facts(config: dict, file: str, tensors: int | None = None, elements: int | None = None) -> None:
    """reader_facts, raised as one line (specfmt.files.FileRefused): the first finding and how many more."""
    from specfmt.files import FileRefused

    found = reader_facts(config, file, tensors, elements)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise FileRefused(Finding(first.file, first.pointer, first.code, first.message + more, first.severity,
                                  first.expected, first.found, first.spec, first.spec_path))
