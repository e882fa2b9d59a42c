"""specfmt upgrade: a compat checkpoint made strict. Every resolved default becomes explicit; a field whose absence
engines read differently (x-specfmt-engine-defaults, CFG-11) is refused unless --set states it; what strict forbids
and no reader uses (auto_map) is dropped; anything else strict requires is refused with the --set that supplies it.
The weights are copied as they are (no tensor is read), so the result differs from the source in config.json only.
Spec: spec/config.md#CFG-11, spec/versioning.md
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from specfmt.convert.common import Decision, VerifierFacts, finish, read_json
from specfmt.findings import ValidationError
from specfmt.publish import looks_like_checkpoint, publish
from specfmt.validate import CONFIG, INDEX, SINGLE, validate

SUPPLIED = "/speculators_config/verifier/"  # facts --verifier supplies (a layout may need them to read the tensors)
STRAY = ("hazard.stray_verifier_tensor",)  # tensors a layout names as the verifier's, which the draft never reads


def upgraded_config(config: dict, given: dict[str, Any], source: str, verifier: VerifierFacts | None = None,
                    shapes: dict | None = None) -> tuple[dict, list[Decision]]:
    """The strict config of a compat `config` and the decisions, through the converters' finishing step
    (common.finish); `shapes` are the stored tensors' shapes (name -> shape), checked against --verifier's facts."""
    done = finish(config, {}, [], given, source, verifier, shapes=shapes or {})
    return done.config, done.decisions


def weight_files(path: Path) -> list[str]:
    """The weights files a checkpoint directory holds: the index and its shards, or model.safetensors."""
    if (path / INDEX).is_file():
        shards = sorted(set(read_json(path / INDEX).get("weight_map", {}).values()))
        return [INDEX, *shards]
    return [SINGLE] if (path / SINGLE).is_file() else []


def copy_without(source: Path, target: Path, name: str, drop: set[str]) -> None:
    """A safetensors file copied byte for byte, except the tensors named in `drop`, which are left out (the
    header rewritten, the other tensors' bytes copied as they are: no tensor is decoded)."""
    from specfmt.safetensors_file import header_bytes
    from specfmt.safetensors_header import read_header

    tensors, _, _ = read_header(str(source / name), name)
    kept = sorted((t for t in tensors if t.name not in drop), key=lambda t: t.start)
    metadata = read_json_header_metadata(source / name)
    with open(source / name, "rb") as src, open(target / name, "wb") as dst:
        dst.write(header_bytes([(t.name, t.dtype, list(t.shape)) for t in kept], metadata))
        for t in kept:
            src.seek(t.start)
            dst.write(src.read(t.end - t.start))


def read_json_header_metadata(path: Path) -> dict | None:
    import struct

    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length)).get("__metadata__")


def write_upgrade(config: dict, source: Path, out: Path, overwrite: bool = False,
                  drop: set[str] = frozenset(), inputs: Iterable[str | Path] = ()) -> Path:
    """config.json and the source's weights files (copied, less the tensors in `drop`) published at `out`
    (specfmt.publish: never at, inside or above `source` or another of the command's `inputs`, the --verifier
    directory), only when strict validation passes; otherwise
    ValidationError with every finding and nothing left behind."""
    from specfmt.checkpoint import dump_config

    def write(staging: Path) -> None:
        (staging / CONFIG).write_text(dump_config(config), encoding="utf-8")
        for name in weight_files(source):
            if drop and name.endswith(".safetensors"):
                copy_without(source, staging, name, drop)
            else:
                shutil.copyfile(source / name, staging / name)
        if drop and (staging / INDEX).is_file():
            index = read_json(staging / INDEX)
            index["weight_map"] = {k: v for k, v in index["weight_map"].items() if k not in drop}
            (staging / INDEX).write_text(dump_config(index), encoding="utf-8")
        report = validate(staging, "strict")
        if report.errors:
            raise ValidationError([f for f in report.findings if f.severity == "error"])

    return publish(out, write, protect=[source, *inputs], overwrite=overwrite, kind_check=looks_like_checkpoint)


def stored_shapes(source: Path) -> dict[str, tuple]:
    """The shape of each tensor the checkpoint stores, from the safetensors headers (no tensor is read)."""
    from specfmt.safetensors_header import read_header

    return {t.name: tuple(t.shape) for name in weight_files(source) if name.endswith(".safetensors")
            for t in read_header(str(source / name), name)[0]}


def upgrade(source: Path, out: Path, given: dict[str, Any], verifier: VerifierFacts | None = None,
            argv: list[str] | None = None, overwrite: bool = False,
            inputs: Iterable[str | Path] = ()) -> tuple[Path, list[Decision]]:
    """Upgrade the compat checkpoint at `source` into a strict one at `out`; its path and the decisions. An absent
    verifier fact is no compat error here: --verifier supplies it, or the finishing step refuses naming the flag."""
    report = validate(source, "compat")
    errors = [f for f in report.errors if not (f.code == "config.required" and f.pointer.startswith(SUPPLIED))]
    if errors:
        raise ValidationError(errors)
    config = read_json(source / CONFIG)
    strict, decisions = upgraded_config(config, given, str(source), verifier, stored_shapes(source))
    stray = {f.pointer[1:] for f in report.findings if f.code in STRAY}
    decisions += [Decision("dropped", name, "a verifier tensor the draft does not read (the runtime uses the "
                           "verifier's own); speculators' MTP converter saves an uninitialised copy")
                  for name in sorted(stray)]
    strict["specfmt_provenance"] = {"tool": "specfmt upgrade", "command": list(argv or []),
                                    "conversion": {"format": "compat", "source": str(source),
                                                   "decisions": [d.to_json() for d in decisions]}}
    return write_upgrade(strict, source, out, overwrite, stray, inputs), decisions
