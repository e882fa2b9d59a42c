"""Layout binding: header-only checkpoints whose tensor list differs from the layout document in one
way each (LAY-4 to LAY-6 and the weight hazards). The data of these files is irrelevant, so they are
written by write_sparse: a valid header and zero data. The eagle3 and mtp ones are bfloat16 to keep
the suite small."""

from __future__ import annotations

from pathlib import Path

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, entries, in_bfloat16, tiny_config, write_config
from conformance.generators.ckpt_bytes import SHAPE, T1, byte_config
from specfmt.layout import MAX_LOOP
from specfmt.safetensors_file import write_sparse

Entries = list[tuple[str, str, list[int]]]


def _sparse(config: dict, edit) -> object:
    """A build: `config` and a header-only model.safetensors of `edit(entries(config))`."""
    def build(path: Path) -> None:
        write_sparse(write_config(path, config) / "model.safetensors", edit(entries(config)))
    return build


def _swap(rows: Entries, name: str, dtype: str | None = None, shape: list[int] | None = None) -> Entries:
    return [(n, dtype or d, shape or s) if n == name else (n, d, s) for n, d, s in rows]


def _eagle3(**changes) -> dict:
    return {**in_bfloat16(variants.config_of("eagle3")), **changes}


def _eagle3_two_layers() -> dict:
    config = _eagle3()
    config["transformer_layer_config"]["num_hidden_layers"] = 2
    return config


# BYTES (eagle3) for the rules of every algorithm, so that an eagle3-only adapter is certified for them; TINY
# (medusa) for medusa's own condition and loops.
TINY, BYTES, EAGLE3, V, H = tiny_config(), byte_config(), _eagle3(), variants.V, variants.H
# (targeted code, case id, description, config, edit of the layout's entries)
LAYOUT_CASES = [
    ("layout.missing", "ckpt.layout.missing", "a required tensor is absent", BYTES,
     lambda e: [r for r in e if r[0] != T1]),
    ("layout.shape", "ckpt.layout.shape", "a tensor is one column wider than its shape expression", BYTES,
     lambda e: _swap(e, T1, shape=[SHAPE[0], SHAPE[1] + 1])),
    ("layout.dtype", "ckpt.layout.dtype", "a float tensor is stored as I32", BYTES, lambda e: _swap(e, T1, "I32")),
    ("layout.unexpected", "ckpt.layout.unexpected", "a tensor that no layout entry names", BYTES,
     lambda e: e + [("blocks.0.extra.weight", "F32", [16])]),
    ("layout.forbidden", "ckpt.layout.forbidden", "lm_heads.0.weight stored although original_lm_head is true",
     TINY, lambda e: e + [("lm_heads.0.weight", "F32", [V, 16])]),
    ("layout.fc_width", "ckpt.layout.fc-width", "eagle3 fc.weight sized for two aux layers while the config lists "
     "three", EAGLE3, lambda e: _swap(e, "fc.weight", shape=[H, 2 * H])),
    ("hazard.d2t_missing", "ckpt.hazard.d2t-missing", "eagle3 with a reduced draft vocabulary but no d2t or t2d",
     EAGLE3, lambda e: [r for r in e if r[0] not in ("d2t", "t2d")]),
    ("hazard.d2t_full_vocab", "ckpt.hazard.d2t-full-vocab", "eagle3 with the full vocabulary that still stores d2t",
     _eagle3(draft_vocab_size=V), lambda e: e + [("d2t", "I64", [V])]),
    ("hazard.layers_missing", "ckpt.hazard.layers-missing", "eagle3 config with two layers whose checkpoint stores "
     "only layer 0, as the EAGLE-3 converter writes", _eagle3_two_layers(),
     lambda e: [r for r in e if not r[0].startswith("layers.1.")]),
    ("hazard.stray_verifier_tensor", "ckpt.hazard.stray-verifier-tensor", "an mtp draft that stores the verifier's "
     "final norm", in_bfloat16(variants.config_of("mtp")), lambda e: e + [("verifier_norm.weight", "BF16", [H])]),
]


def layout_cases() -> list[CheckpointCase]:
    """One difference each between the stored tensors and the layout document; the dtype hazard under
    both profiles (a warning under compat, an error under strict)."""
    cases = [CheckpointCase(case_id, description, "compat", _sparse(config, edit), code)
             for code, case_id, description, config, edit in LAYOUT_CASES]
    for profile in ("compat", "strict"):
        cases.append(CheckpointCase(f"ckpt.hazard.dtype-mismatch.{profile}", f"a float16 tensor in a float32 "
                                    f"checkpoint, under {profile}", profile,
                                    _sparse(BYTES, lambda e: _swap(e, T1, "F16")), "hazard.dtype_mismatch"))
    cases.append(CheckpointCase("ckpt.layout.expression-loop-bound", f"medusa_num_heads {MAX_LOOP + 1} runs a layout "
                                f"loop past the {MAX_LOOP}-iteration bound", "compat", _loop_past_bound,
                                "layout.expression", ("spec/index.md#GEN-6",)))
    cases.append(CheckpointCase("ckpt.layout.expression-nested-loop-bound", "1000 medusa heads of 1000 layers: each "
                                f"loop within {MAX_LOOP}, together 10^6 tensors past the bound the nested loops share",
                                "compat", _nested_loops_past_bound, "layout.expression", ("spec/index.md#GEN-6",)))
    return cases


def _loop_past_bound(path: Path) -> None:
    config = {**TINY, "medusa_num_heads": MAX_LOOP + 1}
    write_sparse(write_config(path, config) / "model.safetensors", entries(TINY))


def _nested_loops_past_bound(path: Path) -> None:
    config = {**TINY, "medusa_num_heads": 1000, "medusa_num_layers": 1000}
    write_sparse(write_config(path, config) / "model.safetensors", entries(TINY))
