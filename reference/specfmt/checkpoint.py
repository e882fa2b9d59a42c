"""save and load: strict checkpoints written atomically, read back without code execution.

Spec: spec/layout.md#SFT-1
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from specfmt.findings import ValidationError
from specfmt.publish import looks_like_checkpoint, publish
from specfmt.validate import CONFIG, INDEX, SINGLE, validate


def dump_config(config: dict[str, Any]) -> str:
    """The canonical config.json text: sorted keys, two-space indent, trailing newline; NaN and the
    infinities are refused (ValueError), since they are not JSON (spec/index.md#GEN-7)."""
    return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def config_document(config: Any) -> dict[str, Any]:
    """config.json's content: a dict as given, or a typed model of specfmt.models (`models.STRICT.validate_python`
    or a class such as `ConfigEagle3Strict`) as the document it holds: every field that was set or has a default,
    and no optional field that was never set (a model holds those as None)."""
    from pydantic import BaseModel

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            fields = {name: getattr(value, name) for name in type(value).model_fields}
            kept = {name: v for name, v in fields.items() if v is not None or name in value.model_fields_set}
            return {name: plain(v) for name, v in {**kept, **(value.model_extra or {})}.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def _shards(tensors: dict, max_shard_bytes: int | None) -> list[dict]:
    if not max_shard_bytes:
        return [tensors]
    shards: list[dict] = [{}]
    size = 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name]
        size += nbytes
    return shards


def _write(config: dict, tensors: dict, directory: Path, max_shard_bytes: int | None) -> None:
    from specfmt.safetensors_file import write_tensors

    (directory / CONFIG).write_text(dump_config(config), encoding="utf-8")
    tensors = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    if not tensors:
        return
    shards = _shards(tensors, max_shard_bytes)
    if len(shards) == 1:
        write_tensors(directory / SINGLE, tensors, {"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        write_tensors(directory / file, shard, {"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (directory / INDEX).write_text(dump_config(index), encoding="utf-8")


def save(config: Any, tensors: dict[str, Any], path: str | os.PathLike, *, max_shard_bytes: int | None = None,
         overwrite: bool = False, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Write a strict v1 checkpoint to `path` atomically; `config` is a dict or a typed model (config_document).

    Spec: spec/layout.md#SFT-1. The files are staged beside `path`, validated under the strict profile and
    published (specfmt.publish): a ValidationError carries every finding and leaves nothing behind. An existing
    `path` is replaced only with `overwrite`, and only when it is a checkpoint (or empty); `path` is never the
    working directory or a `protect`ed path (the source of a conversion), inside one or a parent of one
    (UnsafeOut).
    """
    document = config_document(config)

    def write(staging: Path) -> None:
        _write(document, tensors, staging, max_shard_bytes)
        report = validate(staging, "strict")
        if report.errors:
            raise ValidationError([f for f in report.findings if f.severity == "error"])

    return publish(path, write, protect=protect, overwrite=overwrite, kind_check=looks_like_checkpoint)


def load(path: str | os.PathLike, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """config.json and every tensor of a checkpoint (single or sharded), through the one reader (specfmt.files:
    bounded, shards inside the directory, regular files only, headers checked before data)."""
    from specfmt import files

    root = Path(path)
    return files.read_json(root / CONFIG, CONFIG), files.checkpoint_tensors(root, device)
