"""specfmt upgrade: a compat checkpoint made strict. Every resolved default becomes explicit; a field whose absence
engines read differently (x-specfmt-engine-defaults, CFG-11) is refused unless --set states it; what strict forbids
and no reader uses (auto_map) is dropped; anything else strict requires is refused with the --set that supplies it.
The weights are copied as they are (no tensor is read), so the result differs from the source in config.json only.
Spec: spec/config.md#CFG-11, spec/versioning.md
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from specfmt import hub
from specfmt.convert.common import Decision, Refusal, Refused, VerifierFacts, apply_given, read_json
from specfmt.defaults import applicable_properties, resolve
from specfmt.findings import ValidationError
from specfmt.schemas import VERSION, load
from specfmt.validate import CONFIG, INDEX, SINGLE, validate, validate_config

COMPAT = load("config.schema.json")
DROPPED = ("auto_map",)  # strict forbids them and no reader needs them (GEN-5: never executed)
STRAY = ("hazard.stray_verifier_tensor",)  # tensors a layout names as the verifier's, which the draft never reads


def _filled(original: Any, resolved: Any, path: str, decisions: list[Decision]) -> None:
    """A `default` decision for each value `resolved` holds that `original` lacks."""
    if not isinstance(resolved, dict) or not isinstance(original, dict):
        return
    for key, value in resolved.items():
        where = f"{path}.{key}" if path else key
        if key not in original:
            decisions.append(Decision("default", where, f"{json.dumps(value)} (the schema default, now explicit)"))
        else:
            _filled(original[key], value, where, decisions)


def dotted(pointer: str) -> str:
    return ".".join(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


VERIFIER_FACTS = ("hidden_size", "num_hidden_layers", "vocab_size")


def with_verifier(config: dict, verifier: VerifierFacts | None, source: str, decisions: list[Decision],
                  refusals: list[Refusal]) -> dict:
    """speculators_config.verifier completed from --verifier: the facts CFG-8 requires and its hub id. The
    speculators library writes neither the facts nor, for local verifiers, a hub id."""
    facts = config.get("speculators_config", {}).get("verifier")
    if not isinstance(facts, dict):
        return config
    missing = [k for k in VERIFIER_FACTS if k not in facts]
    if not isinstance(facts.get("name_or_path"), str) or hub.parse(facts["name_or_path"]) is None:
        missing.append("name_or_path")  # null, or a local path: strict names the verifier by hub id (CFG-8)
    if missing and verifier is None:
        refusals.append(Refusal(f"{source}/{CONFIG}", "/speculators_config/verifier", f"the verifier facts "
                                f"{missing} are absent", "--verifier PATH (its config.json) and --verifier-name "
                                "ORG/NAME"))
        return config
    for key in missing:
        value = verifier.name if key == "name_or_path" else verifier.config[key]
        facts[key] = value
        decisions.append(Decision("given", f"speculators_config.verifier.{key}",
                                  f"{json.dumps(value)} from --verifier"))
    return config


def upgraded_config(config: dict, given: dict[str, Any], source: str,
                    verifier: VerifierFacts | None = None) -> tuple[dict, list[Decision]]:
    """The strict config of a compat `config` and the decisions; Refused when engines disagree on an absent
    field that --set does not state, or strict needs a value the source does not hold."""
    decisions: list[Decision] = []
    refusals: list[Refusal] = []
    for name, prop in applicable_properties(config, COMPAT).items():
        readings = prop.get("x-specfmt-engine-defaults")
        if readings and name not in config and name not in given:
            what = ", ".join(f"{engine} reads {json.dumps(v)}" for engine, v in readings.items())
            values = "|".join(dict.fromkeys(v if isinstance(v, str) else json.dumps(v) for v in readings.values()))
            refusals.append(Refusal(f"{source}/{CONFIG}", f"/{name}", f"{name} is absent and engines read it "
                                    f"differently ({what})", f"--set {name}={values}"))
    out = copy.deepcopy(config)
    for key in DROPPED:
        if out.pop(key, None) is not None:
            decisions.append(Decision("dropped", key, "strict forbids it; specfmt never runs code it points to"))
    out = with_verifier(out, verifier, source, decisions, refusals)
    out = apply_given(out, given, decisions)
    resolved = resolve(out)
    _filled(out, resolved, "", decisions)
    if resolved.get("speculators_format_version") != VERSION:
        decisions.append(Decision("translated", "speculators_format_version",
                                  f"{json.dumps(resolved.get('speculators_format_version'))} -> \"{VERSION}\""))
        resolved["speculators_format_version"] = VERSION
    refused = [r.pointer for r in refusals]
    for f in validate_config(resolved, "strict").findings:
        if f.severity == "error" and not any(f.pointer.startswith(p) for p in refused):
            refusals.append(Refusal(f"{source}/{CONFIG}", f.pointer, f"strict: {f.message} [{f.code}]",
                                    f"--set {dotted(f.pointer)}=VALUE"))
    if refusals:
        raise Refused(refusals)
    return resolved, decisions


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

    tensors, _, _ = read_header(str(source / name), name, "compat")
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
                  drop: set[str] = frozenset()) -> Path:
    """config.json and the source's weights files (copied, less the tensors in `drop`) at `out`, atomically, only
    when strict validation passes; otherwise ValidationError with every finding and nothing left behind."""
    from specfmt.checkpoint import dump_config

    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
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
        if out.exists():
            shutil.rmtree(out)
        os.rename(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def upgrade(source: Path, out: Path, given: dict[str, Any], verifier: VerifierFacts | None = None,
            argv: list[str] | None = None, overwrite: bool = False) -> tuple[Path, list[Decision]]:
    """Upgrade the compat checkpoint at `source` into a strict one at `out`; its path and the decisions."""
    report = validate(source, "compat")
    if report.errors:
        raise ValidationError([f for f in report.findings if f.severity == "error"])
    config = read_json(source / CONFIG)
    strict, decisions = upgraded_config(config, given, str(source), verifier)
    stray = {f.pointer[1:] for f in report.findings if f.code in STRAY}
    decisions += [Decision("dropped", name, "a verifier tensor the draft does not read (the runtime uses the "
                           "verifier's own); speculators' MTP converter saves an uninitialised copy")
                  for name in sorted(stray)]
    strict["specfmt_provenance"] = {"tool": "specfmt upgrade", "command": list(argv or []),
                                    "conversion": {"format": "compat", "source": str(source),
                                                   "decisions": [d.to_json() for d in decisions]}}
    return write_upgrade(strict, source, out, overwrite, stray), decisions
