"""The points the text left open until issue 23 (item 4), one case each where a validator can get them wrong: which
repeated key header.duplicate names, and at what pointer (SFT-2); which finding a document that is both broken JSON
(or too deep) and repeats a key gets (GEN-7); what the value scan reads (LAY-7: only after binding, unexpected and
condition-false tensors as unread, a tensor of no element never, the 8-bit floats by their safetensors formats); and
that an entry whose expression fails gives no instance while the other entries are still bound (LAY-3); and
that the dtype hazard covers every stored float tensor, bound or not (LAY-6, which the Node adapter missed).
Built on the eagle3 checkpoint of ckpt_bytes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conformance.generators.ckpt import CheckpointCase, weights, write_config
from conformance.generators.ckpt_bytes import (
    EXTRA,
    HIDDEN,
    MAX_DEPTH,
    SHAPE,
    SHARDS,
    T0,
    T1,
    N,
    _config_bytes,
    _nested,
    _raw,
    _sharded,
    at,
    byte_config,
    header,
)
from conformance.generators.common import dump
from specfmt.safetensors_file import write_tensors

SFT_2, GEN_7, LAY_3, LAY_7 = ("spec/layout.md#SFT-2",), ("spec/index.md#GEN-7",), ("spec/layout.md#LAY-3",), \
    ("spec/layout.md#LAY-7",)
ENTRY = {"dtype": "F32", "shape": SHAPE}


def _members(*members: tuple[str, object]) -> bytes:
    """The header of the other tensors followed by `members` as written, repeats kept (a dict cannot hold them)."""
    rest = json.dumps(header([]))[1:-1]
    return ("{" + ", ".join([rest] + [f"{json.dumps(k)}: {json.dumps(v) if not isinstance(v, bytes) else v.decode()}"
                                      for k, v in members]) + "}").encode()


def _entry(name: str, begin: int, end: int) -> tuple[str, dict]:
    return name, dict(ENTRY, data_offsets=at(begin, end))


GOOD_MEMBERS = [_entry(T0, 0, N), _entry(T1, N, 2 * N)]
REPEATED_DTYPE = b'{"dtype": "F32", "dtype": "F32", "shape": [0], "data_offsets": ' + \
    json.dumps(at(2 * N, 2 * N)).encode() + b"}"

# (id, description, targeted code, anchors besides the code's, build)
HEADER_CASES = [
    ("duplicate-first-in-text", "T0 and T1 both repeat, T1's second member first in the text: header.duplicate names "
     "T1, not the first key nor the first by name (SFT-2)", "header.duplicate", SFT_2,
     _raw(_members(_entry(T0, 0, N), _entry(T1, N, 2 * N), _entry(T1, N, 2 * N), _entry(T0, 0, N)), 2 * N)),
    ("duplicate-tensor-before-entry-key", "a tensor named twice, then an entry that repeats its dtype key: the tensor, "
     "first in the text, is reported (SFT-2)", "header.duplicate", SFT_2,
     _raw(_members(_entry(T0, 0, N), _entry(T0, 0, N), _entry(T1, N, 2 * N), (EXTRA, REPEATED_DTYPE)), 2 * N)),
    ("duplicate-and-too-deep", "a header that names a tensor twice and nests 65 levels deep is header.json alone: "
     "a document is read within the bound before its keys are compared (GEN-7)", "header.json", GEN_7 + SFT_2,
     _raw(_members(_entry(T0, 0, N), _entry(T0, 0, N), _entry(T1, N, 2 * N), (EXTRA, _nested(MAX_DEPTH))), 2 * N)),
    ("duplicate-hides-too-deep", "a value 65 levels deep that a repeated key replaces still makes the header too deep: "
     "header.json, not header.duplicate (GEN-7)", "header.json", GEN_7 + SFT_2,
     _raw(_members(*GOOD_MEMBERS, (EXTRA, _nested(MAX_DEPTH)), (EXTRA, 1)), 2 * N)),
    ("duplicate-and-not-json", "an entry repeats its dtype key and the header is cut off after it: header.json alone "
     "(GEN-7)", "header.json", GEN_7 + SFT_2,
     _raw(_members(*GOOD_MEMBERS, (EXTRA, REPEATED_DTYPE))[:-1] + b", ", 2 * N)),
]


def _config_repeat_too_deep() -> bytes:
    text = dump(byte_config())
    return text.replace("{", f'{{\n  "dtype": "float32",\n  "x_nested": {json.dumps(_nested(MAX_DEPTH))},', 1).encode()


def _scanned(edit, config: dict | None = None):
    """A build: byte_config (or `config`) with its weights edited by `edit(tensors)`, written without validation."""
    def build(path: Path) -> None:
        cfg = config or byte_config()
        tensors = weights(cfg)
        edit(tensors)
        write_tensors(write_config(path, cfg) / "model.safetensors", tensors, {"format": "pt"})
    return build


def _nan(shape: list[int]) -> torch.Tensor:
    return torch.full(shape, float("nan"))


def _float8(tensors: dict[str, torch.Tensor]) -> None:
    """Three 8-bit tensors outside the layout: 0x78 and 0x7E are 256 and 448 in E4M3FN (0x78 would be Inf in an
    E4M3 with infinities), 0x7F is E4M3FN's NaN, 0x7C is E5M2's +Inf."""
    def f8(data: list[int], dtype) -> torch.Tensor:
        return torch.tensor(data, dtype=torch.uint8).view(dtype)
    tensors["extra.e4m3_finite"] = f8([0x78, 0x7E], torch.float8_e4m3fn)
    tensors["extra.e4m3_nan"] = f8([0x7F, 0x00], torch.float8_e4m3fn)
    tensors["extra.e5m2_inf"] = f8([0x7C, 0x00], torch.float8_e5m2)


def _empty_mlp() -> dict:
    config = byte_config()
    config["transformer_layer_config"]["intermediate_size"] = 0
    return config


def _unbound_nan_shard(path: Path, index: dict) -> None:
    """The second shard removed (index.missing_shard, so no binding) and the first rewritten with norm.weight NaN."""
    tensors = weights(byte_config())
    first = {n: tensors[n] for n, shard in index["weight_map"].items() if shard == SHARDS[0]}
    first["norm.weight"] = _nan([HIDDEN])
    write_tensors(path / SHARDS[0], first, {"format": "pt"})
    (path / SHARDS[1]).unlink()


def _failed_entry(path: Path) -> None:
    """target_hidden_size is the string "8", so H_t is too and fc.weight's shape [H, A * H_t] fails (the entries
    whose condition is false, input_norm and fc_norm, never evaluate theirs); norm.weight and fc.weight are absent and
    an extra tensor is stored."""
    config = {**byte_config(), "target_hidden_size": str(HIDDEN)}
    tensors = {n: t for n, t in weights(byte_config()).items() if n not in ("norm.weight", "fc.weight")}
    tensors[EXTRA] = torch.zeros(HIDDEN)
    write_tensors(write_config(path, config) / "model.safetensors", tensors, {"format": "pt"})


def edge_cases() -> list[CheckpointCase]:
    cases = [CheckpointCase(f"ckpt.header.{case_id}", description, "compat", build, code, spec)
             for case_id, description, code, spec, build in HEADER_CASES]
    cases.append(CheckpointCase(
        "ckpt.config.duplicate-key-and-too-deep", "config.json repeats dtype and nests 65 levels deep: config.json "
        "alone, not config.duplicate_key (GEN-7)", "compat", _config_bytes(_config_repeat_too_deep()),
        "config.json", GEN_7))
    values = [
        ("unbound-not-scanned", "a shard is missing, so nothing is bound, and the other holds an all-NaN norm.weight: "
         "index.missing_shard alone, values are scanned only after binding (LAY-7)", "index.missing_shard",
         _sharded(_unbound_nan_shard), LAY_7 + LAY_3),
        ("unexpected-all-nan", "an all-NaN tensor that no entry names: layout.unexpected and hazard.nonfinite, since "
         "nothing reads it (LAY-7)", "hazard.nonfinite", _scanned(lambda t: t.update({EXTRA: _nan([HIDDEN])})), LAY_7),
        ("condition-false-all-nan", "an all-NaN input_norm.weight stored while norm_before_fc is false: "
         "layout.forbidden and hazard.nonfinite, since nothing reads it (LAY-7)", "hazard.nonfinite",
         _scanned(lambda t: t.update({"input_norm.weight": _nan([3 * HIDDEN])})), LAY_7),
        ("zero-elements", "intermediate_size 0 binds three MLP tensors of no element: no value finding, a tensor "
         "without values is not one without a finite value (LAY-7)", "config.range",
         _scanned(lambda t: None, _empty_mlp()), LAY_7),
        ("float8", "8-bit floats outside the layout: F8_E4M3 bytes 0x78 and 0x7E are finite (E4M3FN), 0x7F is NaN, "
         "F8_E5M2 0x7C is +Inf: hazard.nonfinite for the last two (LAY-7)", "hazard.nonfinite", _scanned(_float8),
         LAY_7 + ("spec/layout.md#SFT-3",)),
    ]
    cases += [CheckpointCase(f"ckpt.values.{case_id}", description, "compat", build, code, spec, scan_values=True)
              for case_id, description, code, build, spec in values]
    cases.append(CheckpointCase(
        "ckpt.layout.unexpected-dtype-mismatch", "a float16 tensor that no entry names in a float32 checkpoint: "
        "layout.unexpected and hazard.dtype_mismatch, which LAY-6 reports for every stored float tensor, bound or not",
        "compat", _scanned(lambda t: t.update({EXTRA: torch.zeros(HIDDEN, dtype=torch.float16)})),
        "hazard.dtype_mismatch", ("spec/layout.md#LAY-6",)))
    cases.append(CheckpointCase(
        "ckpt.layout.failed-entry-binds-the-rest", "target_hidden_size is a string, so fc.weight's shape fails and its "
        "entry gives no instance: the absent fc.weight is not reported, the absent norm.weight is layout.missing, and "
        "the extra tensor is not layout.unexpected (LAY-3)", "compat", _failed_entry,
        "layout.missing", LAY_3))
    return cases
