"""--check: regenerate the suite into a temporary directory and compare it with the committed one.

JSON files compare as parsed values, read as strictly as a validator reads them (specfmt.json_text;
the deliberately malformed ones, NaN literals and over-deep nesting included, as bytes). A safetensors file
compares by its parsed header, then tensor by tensor by its values: exactly, since these levels
carry no tolerance; a file whose header does not parse (the byte-level cases) compares byte for
byte, as does any other file. A numerics case's safetensors files are goldens stored in float32,
so their float tensors compare within the case's tolerance (its `outputs` rule; FLOAT32 for
inputs) and their integer tensors exactly. A numerics case.json compares exactly except its `golden`
record, whose machine-computed floats (the margins) need only agree within GOLDEN_RTOL: no float a
CPU computed is compared byte for byte. The committed manifest must list every data file with its
sha256, and agree with the regenerated one apart from the hashes (the comparison above checks
content).
"""

from __future__ import annotations

import difflib
import json
import math
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors

from conformance.generators.common import dump
from conformance.generators.numerics import FLOAT32, MARGIN_DIGITS, NUMERICS_DIR
from conformance.generators.suite import data_files, sha256, write_suite
from specfmt import json_text

GOLDEN_RTOL = 10.0 ** (1 - MARGIN_DIGITS)  # one unit in the last stored digit of a recorded margin


def _json_diff(name: str, committed: object, fresh: object) -> list[str]:
    diff = difflib.unified_diff(dump(committed).splitlines(), dump(fresh).splitlines(), f"committed/{name}",
                                f"regenerated/{name}", lineterm="")
    lines = list(diff)
    return lines[:60] + ([f"... {len(lines) - 60} more diff lines"] if len(lines) > 60 else [])


def close(old: object, new: object, rtol: float) -> bool:
    """Equal JSON values, except that floats need only agree within `rtol` (relative)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(close(old[k], new[k], rtol) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(close(a, b, rtol) for a, b in zip(old, new, strict=True))
    if isinstance(old, float) and isinstance(new, float):
        return math.isclose(old, new, rel_tol=rtol)
    return type(old) is type(new) and old == new


def equivalent(name: str, old: object, new: object) -> bool:
    """A numerics case.json: its golden record within GOLDEN_RTOL, the rest exactly; other files exactly."""
    is_case = name.startswith(NUMERICS_DIR.as_posix() + "/") and name.endswith("/case.json")
    if not (is_case and isinstance(old, dict) and isinstance(new, dict)):
        return close(old, new, 0.0)
    rest = [{k: v for k, v in doc.items() if k != "golden"} for doc in (old, new)]
    return close(*rest, 0.0) and close(old.get("golden"), new.get("golden"), GOLDEN_RTOL)


def compare_json(name: str, committed: bytes, fresh: bytes) -> list[str]:
    """As parsed values; a deliberately malformed file (one the generator wrote unparseable) as bytes."""
    try:
        new = json_text.parse(fresh, name)  # strict: a file the generator wrote broken on purpose fails here
    except json_text.JsonProblem:
        return [] if committed == fresh else [f"{name}: bytes differ (a deliberately malformed JSON file)"]
    try:
        old = json_text.parse(committed, name)
    except json_text.JsonProblem as e:
        return [f"{name}: committed file is not JSON ({e})"]
    return [] if equivalent(name, old, new) else [f"{name}: differs from the regenerated file",
                                                   *_json_diff(name, old, new)]


def parse_safetensors(raw: bytes) -> tuple[dict, int] | None:
    """(header, data start) or None when the bytes are not a readable safetensors file."""
    if len(raw) < 8:
        return None
    (length,) = struct.unpack("<Q", raw[:8])
    try:
        header = json_text.parse(raw[8:8 + length], "header") if 8 + length <= len(raw) else None
    except json_text.JsonProblem:
        return None
    return (header, 8 + length) if isinstance(header, dict) else None


def _ranges(header: dict) -> dict[str, tuple[int, int]] | None:
    """Each tensor's [begin, end) in the data; None when an entry is malformed (a byte-level case)."""
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return None
        out[name] = (offsets[0], offsets[1])
    return out


def compare_safetensors(name: str, committed: bytes, fresh: bytes) -> list[str]:
    old, new = parse_safetensors(committed), parse_safetensors(fresh)
    ranges = _ranges(old[0]) if old else None
    if old is None or new is None or ranges is None:
        return [] if committed == fresh else [f"{name}: bytes differ (not a well-formed safetensors file)"]
    if old[0] != new[0]:
        return [f"{name}: header differs", *_json_diff(name, old[0], new[0])]
    problems = []
    for tensor, (begin, end) in sorted(ranges.items()):
        a, b = committed[old[1] + begin:old[1] + end], fresh[new[1] + begin:new[1] + end]
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            problems.append(f"{name}: tensor {tensor} differs (exact comparison), first at byte {first} of its data")
    if not problems and len(committed) - old[1] != len(fresh) - new[1]:
        problems.append(f"{name}: data length {len(committed) - old[1]} differs from {len(fresh) - new[1]}")
    return problems


def compare_golden(name: str, committed: bytes, fresh: bytes, rules: dict) -> list[str]:
    """A numerics case's tensors: headers exactly, floats within the tolerance of `rules`, integers exactly."""
    old, new = parse_safetensors(committed), parse_safetensors(fresh)
    if old is None or new is None or old[0] != new[0]:
        return [f"{name}: header differs or does not parse"]
    a, b = load_safetensors(committed), load_safetensors(fresh)
    problems = []
    for tensor in sorted(a):
        rule = rules.get(tensor, FLOAT32)
        x, y = a[tensor], b[tensor]
        if not x.is_floating_point() or rule["compare"] == "exact":
            ok = torch.equal(x, y)
        else:  # |fresh - committed| <= atol + rtol * |committed|, as the runner grades
            ok = bool(torch.isclose(y.double(), x.double(), rtol=rule["rtol"], atol=rule["atol"], equal_nan=True).all())
        if not ok:
            problems.append(f"{name}: tensor {tensor} differs beyond the case's tolerance")
    return problems


def compare_file(name: str, committed: bytes, fresh: bytes, suite: Path | None = None) -> list[str]:
    if name.endswith(".json"):
        return compare_json(name, committed, fresh)
    if name.endswith(".safetensors") and name.startswith(NUMERICS_DIR.as_posix() + "/") and suite is not None:
        case = json.loads((suite / name).parent.joinpath("case.json").read_text(encoding="utf-8"))
        rules = case["outputs"] if case["expected"] and name.endswith("/" + case["expected"]) else {}  # refusal: none
        return compare_golden(name, committed, fresh, rules)
    if name.endswith(".safetensors"):
        return compare_safetensors(name, committed, fresh)
    return [] if committed == fresh else [f"{name}: bytes differ"]


def verify_manifest(suite: Path, fresh_manifest: dict) -> list[str]:
    """The committed manifest lists every data file with its sha256, and the regenerated cases."""
    try:
        manifest = json.loads((suite / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"manifest.json: cannot read ({e})"]
    problems = []
    listed, present = set(manifest.get("files", {})), {p.as_posix() for p in data_files(suite)}
    problems += [f"manifest.json: lists {p}, which does not exist" for p in sorted(listed - present)]
    problems += [f"manifest.json: does not list {p}" for p in sorted(present - listed)]
    problems += [f"manifest.json: sha256 of {p} does not match the file" for p in sorted(listed & present)
                 if manifest["files"][p] != sha256(suite / p)]
    for key in ("suite_version", "format_version", "cases"):
        if manifest.get(key) != fresh_manifest[key]:
            problems += [f"manifest.json: {key} differs from the regenerated manifest",
                         *_json_diff("manifest.json", manifest.get(key), fresh_manifest[key])]
    return problems


def compare(suite: Path, fresh_root: Path, fresh_manifest: dict) -> list[str]:
    """Every difference between the committed suite at `suite` and the one generated at `fresh_root`."""
    committed, fresh = set(data_files(suite)), set(data_files(fresh_root))
    problems = [f"{p}: not generated (stale file)" for p in sorted(committed - fresh)]
    problems += [f"{p}: generated but not committed" for p in sorted(fresh - committed)]
    for rel in sorted(committed & fresh):
        problems += compare_file(rel.as_posix(), (suite / rel).read_bytes(), (fresh_root / rel).read_bytes(), suite)
    return problems + verify_manifest(suite, fresh_manifest)


def check(suite: Path) -> list[str]:
    """Regenerate into a temporary directory and compare with the committed suite at `suite`."""
    version = (suite / "SUITE_VERSION").read_text(encoding="utf-8").strip()
    with tempfile.TemporaryDirectory(prefix="specfmt-suite-") as tmp:
        return compare(suite, Path(tmp), write_suite(Path(tmp), version))
