"""The expression language's semantics seen through binding (LAY-2): configs whose values reach a layout expression
with a type that an implementation may get wrong. Each config has a schema error (binding still runs, LAY-3), and
the tensors are written for the config as it would read without it.

- `==` across types: DFlash's `lm_head.weight` is required when `V_d != V` and optional when `V_d == V`; with
  `draft_vocab_size` 1 and the verifier's `vocab_size` `true`, `1 == true` holds, so the absent head is no
  finding, where a strictly typed `==` reports it missing (every entry that reads `V` as an integer fails to
  evaluate, the same for both);
- `len` of a string or an object is an error: eagle3's `A = len(eagle_aux_hidden_state_layer_ids) ?? 3` then fails,
  and with it `fc.weight`'s shape, so its 3-aux width is no finding, where a `len` that counts the characters of
  `"ab"` or the members of a 2-member object reports `layout.fc_width`.

Tiny header-only checkpoints (write_sparse): the byte-level cases' eagle3 (hidden size 8), a one-layer DFlash
at hidden size 8. `1 == 1.0` is not among them: JSON does not tell
`1.0` from `1` (RFC 8259 section 6), and a layout value that is `1.0` meets arithmetic or ordering first.
"""

from __future__ import annotations

import copy
from pathlib import Path

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, entries, in_bfloat16, write_config
from conformance.generators.ckpt_bytes import HIDDEN, byte_config
from specfmt.safetensors_file import write_sparse

LAY2 = ("spec/layout.md#LAY-2",)


def _build(config: dict, schema_error, dropped: tuple[str, ...] = ()):
    """A build: `config` with `schema_error(config)` applied, tensors of `config` as it was, less `dropped`."""
    def build(path: Path) -> None:
        broken = copy.deepcopy(config)
        schema_error(broken)
        rows = [row for row in entries(config) if row[0] not in dropped]
        write_sparse(write_config(path, broken) / "model.safetensors", rows)
    return build


def _dflash_vocab_1() -> dict:
    """One-layer DFlash at hidden size 8 whose draft and verifier vocabularies are 1 id: lm_head optional, no d2t or
    t2d."""
    config = in_bfloat16(variants.config_of("dflash"))
    config.update(draft_vocab_size=1, mask_token_id=0)
    config["transformer_layer_config"].update(hidden_size=HIDDEN, intermediate_size=HIDDEN, num_attention_heads=1,
                                              num_key_value_heads=1, head_dim=HIDDEN, vocab_size=1,
                                              num_hidden_layers=1)
    config["speculators_config"]["verifier"].update(hidden_size=HIDDEN, vocab_size=1)
    return config


def _set(path: tuple[str, ...], value):
    def edit(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def expr_cases() -> list[CheckpointCase]:
    eagle3 = byte_config()
    aux = ("eagle_aux_hidden_state_layer_ids",)
    return [
        CheckpointCase("ckpt.layout.expr-bool-equals-int", "dflash with draft_vocab_size 1 and the verifier's "
                       "vocab_size true, no lm_head.weight: V_d == V holds (1 == true), so the head is optional",
                       "compat", _build(_dflash_vocab_1(), _set(("transformer_layer_config", "vocab_size"), True),
                                        ("lm_head.weight", "embed_tokens.weight")), "config.type", LAY2),
        CheckpointCase("ckpt.layout.expr-len-of-string", "eagle3 with eagle_aux_hidden_state_layer_ids \"ab\": "
                       "len() of a string is an error, so fc.weight's width is not checked", "compat",
                       _build(eagle3, _set(aux, "ab")), "config.type", LAY2),
        CheckpointCase("ckpt.layout.expr-len-of-object", "eagle3 with eagle_aux_hidden_state_layer_ids a 2-member "
                       "object: len() of an object is an error, so fc.weight's width is not checked", "compat",
                       _build(eagle3, _set(aux, {"a": 1, "b": 2})), "config.type", LAY2),
    ]
