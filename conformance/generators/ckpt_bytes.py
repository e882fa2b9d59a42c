"""Byte-level bad input, one rule each: malformed safetensors headers, shard indexes, pickle or
absent weights and unreadable config.json files. Every case starts from byte_config(), a tiny strict eagle3
draft (so that an adapter that implements eagle3 alone is certified for them), whose tensors T0 and T1 are
256 bytes each and stored last, after every other tensor of the layout, so that only the broken rule is
reported."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import torch

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, entries, weights, write_config, write_raw
from conformance.generators.ckpt import header as header_of
from conformance.generators.common import dump
from specfmt.safetensors_file import write_tensors
from specfmt.schemas import SAFETENSORS

MAX_DEPTH = SAFETENSORS["json_max_depth"]
HIDDEN = 8
SHAPE = [HIDDEN, HIDDEN]  # T0 and T1, [intermediate_size, hidden_size]


def byte_config() -> dict:
    """The smallest strict eagle3 checkpoint: one llama layer of one head at hidden size 8, the full vocabulary of 8
    ids (so no d2t or t2d), float32; every [8, 8] tensor is 256 bytes."""
    config = variants.config_of("eagle3")
    config["transformer_layer_config"].update(hidden_size=HIDDEN, intermediate_size=HIDDEN, num_attention_heads=1,
                                              num_key_value_heads=1, head_dim=HIDDEN, vocab_size=HIDDEN)
    config["speculators_config"]["verifier"].update(hidden_size=HIDDEN, vocab_size=HIDDEN)
    config["draft_vocab_size"] = HIDDEN
    return config


T0, T1 = "layers.0.mlp.gate_proj.weight", "layers.0.mlp.up_proj.weight"
N = HIDDEN * HIDDEN * 4
EXTRA = "extra.weight"  # an entry outside the layout; a malformed one is dropped, so nothing else is reported
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
INDEX = "model.safetensors.index.json"


def _rest() -> tuple[list[tuple[str, str, list[int], list[int]]], int]:
    """Every tensor of byte_config() but T0 and T1, stored contiguously from offset 0, and the bytes they take."""
    rows, offset = [], 0
    for name, dtype, shape in entries(byte_config()):
        if name not in (T0, T1):
            size = math.prod(shape) * SAFETENSORS["dtypes"][dtype]["bytes"]
            rows.append((name, dtype, shape, [offset, offset + size]))
            offset += size
    return rows, offset


REST, B = _rest()


def at(begin: int, end: int) -> list[int]:
    """data_offsets counted from where T0 starts, after the other tensors."""
    return [B + begin, B + end]


GOOD = [(T0, "F32", SHAPE, at(0, N)), (T1, "F32", SHAPE, at(N, 2 * N))]


def header(rows: list[tuple[str, str, list[int], list[int]]]) -> dict:
    """A header of the other tensors and `rows`, with the usual metadata."""
    return header_of(REST + rows)


def _single(write):
    """A build: byte_config's config.json, and model.safetensors written by `write(path)`."""
    def build(path: Path) -> None:
        write(write_config(path, byte_config()) / "model.safetensors")
    return build


def _raw(header_value, data_len: int, declared_len: int | None = None):
    """model.safetensors with `header_value` and the other tensors' bytes followed by `data_len` bytes."""
    return _single(lambda f: write_raw(f, header_value, B + data_len, declared_len))


def _with_extra(entry) -> dict:
    return {**header(GOOD), EXTRA: entry}


def _nested(levels: int) -> list:
    """`levels` arrays, one inside the other: [[[...]]]."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _literal_in_header() -> bytes:
    """The GOOD header with an extra entry whose shape is [NaN] (Python's json accepts the literal)."""
    extra = json.dumps({"dtype": "F32", "shape": [0], "data_offsets": at(2 * N, 2 * N)}).replace("[0]", "[NaN]")
    return json.dumps(header(GOOD))[:-1].encode() + f', "{EXTRA}": {extra}}}'.encode()


def _duplicate_header() -> bytes:
    entry = {"dtype": "F32", "shape": SHAPE}
    first, second = dict(entry, data_offsets=at(0, N)), dict(entry, data_offsets=at(N, 2 * N))
    rest = json.dumps(header([]))[1:-1]  # the metadata and the other tensors
    return f'{{{rest}, "{T0}": {json.dumps(first)}, "{T0}": {json.dumps(second)}}}'.encode()


# (id, description, targeted code, build)
HEADER_CASES = [
    ("length-past-end", "the header length runs past the end of the file", "header.length",
     _raw(header(GOOD), 2 * N, declared_len=1_000_000)),
    ("length-over-bound", "the header length is one over header_max_bytes", "header.length",
     _raw(header(GOOD), 2 * N, declared_len=SAFETENSORS["header_max_bytes"] + 1)),
    ("truncated-prefix", "the file is two bytes long, shorter than the length prefix", "header.truncated",
     _single(lambda f: f.write_bytes(b"\x01\x02"))),
    ("truncated-data", "the file ends four bytes before the data the header describes", "header.truncated",
     _raw(header(GOOD), 2 * N - 4)),
    ("json-not-json", "the header is not JSON", "header.json", _raw(b"{{{{", 0)),
    ("json-not-object", "the header is a JSON array", "header.json", _raw(b"[1, 2]", 0)),
    ("json-not-utf8", "the header is not UTF-8", "header.json", _raw(b'{"\xff": 1}', 0)),
    ("duplicate", "the header names a tensor twice", "header.duplicate", _raw(_duplicate_header(), 2 * N)),
    ("metadata-not-strings", "__metadata__ maps a key to a number", "header.metadata",
     _raw({**header(GOOD), "__metadata__": {"format": "pt", "step": 1}}, 2 * N)),
    ("entry-not-object", "a tensor entry is a string", "header.entry", _raw(_with_extra("F32"), 2 * N)),
    ("entry-missing-offsets", "a tensor entry lacks data_offsets", "header.entry",
     _raw(_with_extra({"dtype": "F32", "shape": [0]}), 2 * N)),
    ("entry-required-malformed", "a required tensor's entry lacks data_offsets: header.entry, not also layout.missing "
     "(LAY-3)", "header.entry", _raw({**header(GOOD[:1]), T1: {"dtype": "F32", "shape": SHAPE}}, N)),
    ("entry-negative-dim", "a tensor shape has a negative dimension", "header.entry",
     _raw(_with_extra({"dtype": "F32", "shape": [-1], "data_offsets": at(2 * N, 2 * N)}), 2 * N)),
    ("dtype-unknown", "a tensor has the dtype F7, which does not exist", "header.dtype",
     _raw(_with_extra({"dtype": "F7", "shape": [0], "data_offsets": at(2 * N, 2 * N)}), 2 * N)),
    ("dtype-not-a-string", "a tensor's dtype is the list [\"F32\"], not a string", "header.dtype",
     _raw(_with_extra({"dtype": ["F32"], "shape": [0], "data_offsets": at(2 * N, 2 * N)}), 2 * N)),
    ("dtype-outside-profile", "a tensor has the safetensors dtype C64, outside the profile", "header.dtype",
     _raw(_with_extra({"dtype": "C64", "shape": [0], "data_offsets": at(2 * N, 2 * N)}), 2 * N)),
    ("size-mismatch", "a tensor's byte range is four bytes longer than its shape", "header.size",
     _raw(header(GOOD[:1] + [(T1, "F32", SHAPE, at(N, 2 * N + 4))]), 2 * N + 4)),
    ("offsets-gap", "four bytes lie between two tensors", "header.offsets",
     _raw(header(GOOD[:1] + [(T1, "F32", SHAPE, at(N + 4, 2 * N + 4))]), 2 * N + 4)),
    ("offsets-overlap", "two tensors share four bytes", "header.offsets",
     _raw(header(GOOD[:1] + [(T1, "F32", SHAPE, at(N - 4, 2 * N - 4))]), 2 * N - 4)),
    ("offsets-reversed", "a tensor's data_offsets end before they begin", "header.offsets",
     _raw(_with_extra({"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}), 2 * N)),
    ("offsets-trailing-bytes", "eight bytes follow the last tensor", "header.offsets", _raw(header(GOOD), 2 * N + 8)),
    ("json-nan-literal", "a tensor shape holds the literal NaN, which is not JSON (GEN-7)", "header.json",
     _raw(_literal_in_header(), 2 * N)),
    ("json-nesting-over-bound", "an extra entry nests 64 arrays, so the header is 65 levels deep (GEN-7)",
     "header.json", _raw(_with_extra(_nested(MAX_DEPTH)), 2 * N)),
    ("entry-offsets-not-a-list", "a tensor's data_offsets is a string: header.offsets, not header.entry (SFT-2)",
     "header.offsets", _raw(_with_extra({"dtype": "F32", "shape": [0], "data_offsets": "0"}), 2 * N)),
    ("entry-first-problem-only", "an entry with a negative dimension and an unknown dtype gets one finding, the "
     "first in SFT-2's order (header.entry at its shape)", "header.entry",
     _raw(_with_extra({"dtype": "F7", "shape": [-1], "data_offsets": at(2 * N, 2 * N)}), 2 * N)),
    ("duplicate-inside-entry", "a tensor entry repeats its dtype key: header.duplicate at /dtype (SFT-2)",
     "header.duplicate", _raw(json.dumps(header(GOOD))[:-1].encode()
                              + f', "{EXTRA}": {{"dtype": "F32", "dtype": "F32", "shape": [0], '
                                f'"data_offsets": {at(2 * N, 2 * N)}}}}}'.encode(), 2 * N)),
    ("entry-malformed-coverage", "a malformed entry beside four bytes between the two tensors: coverage is still "
     "checked over the well-formed entries (SFT-4)", "header.entry",
     _raw({**header(GOOD[:1] + [(T1, "F32", SHAPE, at(N + 4, 2 * N + 4))]), EXTRA: "F32"}, 2 * N + 4)),
    ("entry-malformed-binds-the-rest", "a malformed extra entry and a required tensor absent: the well-formed "
     "entries are still bound, so the absent one is layout.missing (LAY-3)", "header.entry",
     _raw({**header(GOOD[:1]), EXTRA: {"dtype": "F32", "shape": [0]}}, N)),
    ("offsets-unsorted", "tensors listed in the header out of offset order (valid: SFT-4 sorts by begin)", None,
     _raw(header([(T0, "F32", SHAPE, at(N, 2 * N)), (T1, "F32", SHAPE, at(0, N))]), 2 * N)),
]


def header_cases() -> list[CheckpointCase]:
    """Malformed safetensors headers (SFT-2 to SFT-4)."""
    return [CheckpointCase(f"ckpt.header.{case_id}", description, "compat", build, code,
                           () if code else ("spec/layout.md#SFT-4",))
            for case_id, description, code, build in HEADER_CASES]


def _sharded(edit):
    """A build: byte_config saved in two shards, T1 alone in the second, then `edit(path, index)` applied; the
    edited index (or the document `edit` returns instead) is written back."""
    def build(path: Path) -> None:
        config = byte_config()
        write_config(path, config)
        index = {"metadata": {"total_size": B + 2 * N}, "weight_map": {}}
        _restack(path, index, {SHARDS[0]: [T0], SHARDS[1]: [T1]}, {T0: SHARDS[0], T1: SHARDS[1]})
        replacement = edit(path, index)
        (path / INDEX).write_text(dump(index if replacement is None else replacement), encoding="utf-8")
    return build


def _restack(path: Path, index: dict, shards: dict[str, list[str]], weight_map: dict[str, str]) -> None:
    """Write the shards anew: the first holds every other tensor of the layout and the shards hold T0 and T1 as
    `shards` says; weight_map lists the other tensors in the first shard and T0 and T1 as `weight_map` says."""
    tensors: dict[str, torch.Tensor] = weights(byte_config())
    rest = [name for name in tensors if name not in (T0, T1)]
    for shard in SHARDS:
        (path / shard).unlink(missing_ok=True)
        if shard == SHARDS[0] or shard in shards:
            names = (rest if shard == SHARDS[0] else []) + shards.get(shard, [])
            write_tensors(path / shard, {n: tensors[n] for n in names}, {"format": "pt"})
    index["weight_map"] = {**{name: SHARDS[0] for name in rest}, **weight_map}


def _set(path: Path, index: dict, name: str, shard: str) -> None:
    index["weight_map"][name] = shard


INDEX_CASES = [
    ("json-not-object", "the index is a JSON array", "index.json", lambda p, i: [i]),
    ("json-weight-map-values", "weight_map maps a tensor to a number", "index.json",
     lambda p, i: _set(p, i, T0, 1)),
    ("path-parent", "weight_map names a shard in the parent directory", "index.path",
     lambda p, i: _set(p, i, T1, "../" + SHARDS[1])),
    ("missing-shard", "a shard named by the index is absent", "index.missing_shard",
     lambda p, i: (p / SHARDS[1]).unlink()),
    ("mismatch-swapped", "weight_map swaps the shards of the two tensors", "index.mismatch",
     lambda p, i: i["weight_map"].update({T0: SHARDS[1], T1: SHARDS[0]})),
    ("mismatch-unlisted", "a shard stores a tensor that weight_map does not list", "index.mismatch",
     lambda p, i: _restack(p, i, {SHARDS[0]: [T0, T1]}, {T0: SHARDS[0]})),
    ("mismatch-stored-twice", "two shards store the same tensor", "index.mismatch",
     lambda p, i: _restack(p, i, {SHARDS[0]: [T0, T1], SHARDS[1]: [T1]}, {T0: SHARDS[0], T1: SHARDS[1]})),
    ("mismatch-listed-absent", "weight_map places a required tensor in a shard that holds no tensor: index.mismatch, "
     "and the tensors are still bound, so it is also layout.missing (LAY-3)", "index.mismatch",
     lambda p, i: _restack(p, i, {SHARDS[0]: [T0], SHARDS[1]: []}, {T0: SHARDS[0], T1: SHARDS[1]})),
]


def _index_not_json(path: Path) -> None:
    _sharded(lambda p, i: None)(path)
    (path / INDEX).write_text("{", encoding="utf-8")


def _index_with_literal(path: Path) -> None:
    _sharded(lambda p, i: None)(path)
    text = (path / INDEX).read_text(encoding="utf-8")
    (path / INDEX).write_text(text.replace("{", '{\n  "metadata": {"total_size": Infinity},', 1), encoding="utf-8")


def index_cases() -> list[CheckpointCase]:
    """Broken shard indexes (SFT-5)."""
    cases = [CheckpointCase("ckpt.index.json-not-json", "model.safetensors.index.json is not JSON", "compat",
                            _index_not_json, "index.json"),
             CheckpointCase("ckpt.index.json-infinity-literal", "the index's metadata holds the literal Infinity, "
                            "which is not JSON (GEN-7)", "compat", _index_with_literal, "index.json")]
    cases += [CheckpointCase(f"ckpt.index.{case_id}", description, "compat", _sharded(edit), code)
              for case_id, description, code, edit in INDEX_CASES]
    return cases


def _pickle_only(path: Path) -> None:
    write_config(path, byte_config())
    # A harmless pickle (a dict of floats): the validator must refuse it without opening it.
    (path / "pytorch_model.bin").write_bytes(pickle.dumps({T0: [0.0, 0.0]}, protocol=2))


def _index_and_stale_single(path: Path) -> None:
    _sharded(lambda p, i: None)(path)
    write_raw(path / "model.safetensors", b"{{{{", 0)  # ignored: the index wins (SFT-1)


def _other_name(path: Path) -> None:
    config = byte_config()
    write_tensors(write_config(path, config) / "weights.safetensors", weights(config), {"format": "pt"})


def weights_cases() -> list[CheckpointCase]:
    """Which weights files are read (SFT-1): pickles refused, absence reported, the index preferred."""
    return [
        CheckpointCase("ckpt.weights.pickle", "only a pytorch_model.bin pickle (harmless) holds the weights", "compat",
                       _pickle_only, "weights.pickle"),
        CheckpointCase("ckpt.weights.missing", "config.json alone, for an algorithm with tensors", "compat",
                       lambda p: write_config(p, byte_config()), "weights.missing"),
        CheckpointCase("ckpt.weights.missing-other-name", "the weights are in weights.safetensors, a name no reader "
                       "looks for", "compat", _other_name, "weights.missing"),
        CheckpointCase("ckpt.weights.index-preferred", "an index with its shards beside a broken model.safetensors "
                       "(valid: the index wins)", "strict", _index_and_stale_single, None, ("spec/layout.md#SFT-1",)),
    ]


def _not_a_directory(path: Path) -> None:
    path.write_text("a file where the checkpoint directory should be\n", encoding="utf-8")


def io_cases() -> list[CheckpointCase]:
    """A checkpoint path that does not exist or is not a directory (GEN-3)."""
    return [CheckpointCase("ckpt.io.absent", "the checkpoint directory does not exist", "compat", lambda p: None,
                           "io.not_found"),
            CheckpointCase("ckpt.io.not-a-directory", "the checkpoint path is a file", "compat", _not_a_directory,
                           "io.not_found")]


def _config_bytes(data: bytes):
    def build(path: Path) -> None:
        config = byte_config()
        path.mkdir(parents=True)
        (path / "config.json").write_bytes(data)
        write_tensors(path / "model.safetensors", weights(config), {"format": "pt"})
    return build


def _duplicate_key_config() -> bytes:
    return dump(byte_config()).replace("{", '{\n  "dtype": "float16",', 1).encode()


def _config_with(key: str, value_text: str) -> bytes:
    """byte_config with one more top-level key whose value is the raw JSON-like text `value_text`."""
    return dump(byte_config()).replace("{", f'{{\n  "{key}": {value_text},', 1).encode()


def _config_literal(literal: str) -> bytes:
    """byte_config whose accept_tolerance is the token `literal` (Python's json accepts NaN and Infinity)."""
    return dump(byte_config()).replace('"accept_tolerance": 0.0', f'"accept_tolerance": {literal}').encode()


def config_file_cases() -> list[CheckpointCase]:
    """config.json that cannot be read as a config (CFG-1, CFG-2)."""
    rows = [("missing", "model.safetensors without config.json", "config.missing", None),
            ("not-json", "config.json is not JSON", "config.json", b"{not json"),
            ("not-utf8", "config.json is not UTF-8", "config.encoding", b'{"a": "\xff\xfe"}'),
            ("duplicate-key", "config.json repeats the key dtype", "config.duplicate_key", _duplicate_key_config()),
            ("not-object", "config.json is a JSON array", "config.type", b"[1, 2, 3]"),
            ("nan-literal", "accept_tolerance is the literal NaN, which is not JSON (GEN-7)", "config.json",
             _config_literal("NaN")),
            ("infinity-literal", "an undeclared key holds the literal -Infinity, which is not JSON (GEN-7)",
             "config.json", _config_with("x_best_loss", "-Infinity")),
            ("nesting-over-bound", "an undeclared key nests 64 arrays, so config.json is 65 levels deep (GEN-7)",
             "config.json", _config_with("x_nested", json.dumps(_nested(MAX_DEPTH)))),
            ("nesting-at-bound", "an undeclared key nests 63 arrays: config.json is 64 levels deep (valid: GEN-7)",
             None, _config_with("x_nested", json.dumps(_nested(MAX_DEPTH - 1))))]
    cases = []
    for case_id, description, code, data in rows:
        build = _config_bytes(data) if data is not None else _weights_only
        cases.append(CheckpointCase(f"ckpt.config.{case_id}", description, "compat", build, code,
                                    () if code else ("spec/index.md#GEN-7",)))
    return cases


def _weights_only(path: Path) -> None:
    path.mkdir(parents=True)
    write_tensors(path / "model.safetensors", weights(byte_config()), {"format": "pt"})
