"""The fuzz targets and their mutators, shared by tests/test_fuzz.py (a short deterministic budget in `make test`)
and scripts/fuzz.py (`make fuzz`, 10^5 inputs per target).

A target feeds one input to a real entry point of the validator. The only acceptable outcome is a returned report
(findings, or JsonProblem from the JSON reader, which is how it refuses); any other exception is a bug, and so is a
report that the CLI could not print (check_report). Every mutator takes a random.Random, so one definition serves
the short run, where hypothesis picks its seed, and the high-count run. In-memory configs stay close to what the
strict JSON reader can return (floats including the infinity that "1e400" reads as, integers of a few hundred
digits, at most 128 added levels of nesting); what lies beyond, such as NaN, 10^5 nested arrays or invalid UTF-8,
reaches the validator as bytes through config.json.
Spec: spec/index.md#GEN-5, spec/index.md#GEN-7
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from specfmt import json_text, schemas
from specfmt.findings import PROFILES, Report, under
from specfmt.safetensors_file import header_bytes
from specfmt.safetensors_header import HEADER_MAX_BYTES, read_header
from specfmt.schemas import ALGORITHMS, CODES
from specfmt.validate import CONFIG, INDEX, SINGLE, validate, validate_config

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "conformance" / "fixtures"
CONFIG_FILES = sorted((ROOT / "tests" / "corpus" / "speculators").glob("*/config.json")) + sorted(
    FIXTURES.rglob("config.json"))
SAFETENSORS_FILES = sorted(FIXTURES.rglob("*.safetensors"))
CHECKPOINT = FIXTURES / "numerics" / "eagle3"  # the checkpoint whose files the targets replace, one at a time

SCALARS = [None, True, False, 0, 1, -1, 2, 3, 8, 255, 256, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63,
           2**64, -(2**63), 10**100, 10**400, 0.0, -0.0, 0.5, 1.5, 1e-6, 5e-324, 1.7976931348623157e308,
           float("inf"), float("-inf"), "", "0", "0.5", "x" * 4096, "\ud800", "\x00", "é", "../x", "null"]
TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0", b"99999999999999999999999", b"null", b"true", b'"',
          b"\\", b'"\\ud800"', b"{", b"}", b"[", b"]", b",", b":", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x00",
          b"[" * 100, b"[" * 100_000, b'{"a":' * 70]
BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x2D, 0x30, 0x39, 0x20]


# Value-level mutation: the JSON tree of a config, an index or a safetensors header.

def _nodes(holder: list) -> list[tuple[Any, Any]]:
    """Every (container, key) of the tree in holder[0], the root included as (holder, 0)."""
    out, stack = [], [(holder, 0)]
    while stack:
        parent, key = stack.pop()
        out.append((parent, key))
        value = parent[key]
        if isinstance(value, dict):
            stack.extend((value, k) for k in value)
        elif isinstance(value, list):
            stack.extend((value, i) for i in range(len(value)))
    return out


def donors(docs: list) -> tuple[list[str], list]:
    """The keys and the values of `docs`, to splice one document's parts into another."""
    keys, values = set(), []
    for doc in docs:
        for parent, key in _nodes([doc]):
            if isinstance(parent, dict):
                keys.add(key)
            values.append(parent[key])
    return sorted(keys), values


def _edit(rng: random.Random, parent: Any, key: Any, keys: list[str], values: list) -> None:
    """One edit at parent[key]: drop, duplicate, rename, retype, splice, nest, or tweak a number or string."""
    value, op = parent[key], rng.randrange(8)
    if op == 0:
        del parent[key]
    elif op == 1 and isinstance(parent, dict):
        parent[rng.choice(keys) if rng.random() < 0.5 else f"{key}_"] = copy.deepcopy(value)
    elif op == 2 and isinstance(parent, dict):
        parent[rng.choice(keys)] = parent.pop(key)
    elif op == 3:
        parent[key] = rng.choice([*SCALARS, [], {}, [value], {str(key): value}])
    elif op == 4 and values:
        parent[key] = copy.deepcopy(rng.choice(values))
    elif op == 5:
        for _ in range(rng.choice([1, 2, 8, 32])):
            value = [value] if rng.random() < 0.5 else {"a": value}
        parent[key] = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        third = value // 3 if isinstance(value, int) else value / 3
        parent[key] = rng.choice([-value, value + rng.choice([-1, 1]), value * 2**40, third, rng.choice(SCALARS)])
    elif isinstance(value, str):
        parent[key] = rng.choice([value[: len(value) // 2], value * 2, value.upper(), value + "\n", " " + value])
    else:
        parent[key] = rng.choice(SCALARS)


def mutate_value(rng: random.Random, doc: Any, keys: list[str], values: list) -> Any:
    """A copy of `doc` with one to four edits at random places."""
    holder = [copy.deepcopy(doc)]
    for _ in range(rng.randint(1, 4)):
        parent, key = rng.choice(_nodes(holder))
        _edit(rng, parent, key, keys, values)
        if not holder:  # the root was dropped
            holder.append(rng.choice(SCALARS))
    return holder[0]


def dump_json(rng: random.Random, value: Any) -> bytes:
    """`value` as JSON text: sometimes indented, sometimes with a repeated top-level key, lone surrogates raw."""
    if isinstance(value, dict) and value and rng.random() < 0.1:
        pairs = list(value.items())
        pairs.insert(rng.randrange(len(pairs) + 1), rng.choice(pairs))
        text = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    else:
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 2]))
    return text.encode("utf-8", "surrogatepass")


# Byte-level mutation.

def mutate_text(rng: random.Random, raw: bytes, keys: list[str], values: list) -> bytes:
    """A JSON document's text with its value edited, its bytes edited, or both."""
    edit_value = rng.random() < 0.5
    if edit_value:
        raw = dump_json(rng, mutate_value(rng, json.loads(raw), keys, values))
    return mutate_bytes(rng, raw) if not edit_value or rng.random() < 0.5 else raw


def mutate_bytes(rng: random.Random, data: bytes, hot: int = 0) -> bytes:
    """One to four edits: bit flip, byte set, deletion, token insertion, duplication, truncation; nine in ten land
    in the first `hot` bytes when `hot` is set (a safetensors header)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            out += rng.choice(TOKENS)
        limit = min(hot, len(out)) if hot and rng.random() < 0.9 else len(out)
        pos, op = rng.randrange(limit), rng.randrange(6)
        if op == 0:
            out[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[pos] = rng.choice(BYTES)
        elif op == 2:
            del out[pos:pos + rng.randint(1, 16)]
        elif op == 3:
            out[pos:pos] = rng.choice(TOKENS)
        elif op == 4:
            out[pos:pos] = out[pos:pos + rng.randint(1, 64)]
        else:
            del out[pos:]
    return bytes(out)


def mutate_safetensors(rng: random.Random, data: bytes, keys: list[str], values: list) -> bytes:
    """The header's bytes, its 8-byte length, its JSON value, or the file's length changed."""
    (length,) = struct.unpack_from("<Q", data)
    op = rng.randrange(4)
    if op == 0:
        return mutate_bytes(rng, data, hot=8 + length)
    if op == 1:
        lengths = [0, 1, 7, length - 1, length + 1, length + 8, len(data) - 8, len(data), HEADER_MAX_BYTES,
                   HEADER_MAX_BYTES + 1, 2**63, 2**64 - 1, rng.randrange(2**64)]
        return struct.pack("<Q", max(0, rng.choice(lengths))) + data[8:]
    if op == 2:
        header = mutate_value(rng, json.loads(data[8:8 + length]), keys, values)
        text = dump_json(rng, header)
        declared = len(text) if rng.random() < 0.8 else length
        return struct.pack("<Q", declared) + text + data[8 + length:]
    return data[:rng.randrange(len(data))]


# The targets.

def check_report(report: Report) -> Report:
    """What every report must satisfy: declared codes, JSON pointers, each finding printable as UTF-8 and the
    whole report as JSON (the CLI prints one or the other; failing to is a traceback there)."""
    for f in report.findings:
        assert f.code in CODES, f.code
        assert f.pointer == "" or f.pointer.startswith("/"), f.pointer
        str(f).encode("utf-8")
    json.dumps(report.to_json())
    return report


@dataclass(frozen=True)
class Target:
    """A fuzz target: where its inputs start, how one is mutated, how it is run and how it is saved."""

    name: str
    seeds: list
    mutate: Callable[[random.Random, Any], Any]
    run: Callable[[Any, str], Any]  # (input, profile); returns a report, raises only on a bug
    dump: Callable[[Any], bytes]
    every_profile: bool = False  # run each input under both profiles, rather than alternating


def write_sharded(src: Path, dest: Path) -> Path:
    """The single-file checkpoint `src` rewritten at `dest` as two shards and a model.safetensors.index.json."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / CONFIG, dest / CONFIG)
    raw = (src / SINGLE).read_bytes()
    tensors, _, _ = read_header(str(src / SINGLE), SINGLE)
    halves = [tensors[: len(tensors) // 2], tensors[len(tensors) // 2:]]
    weight_map = {}
    for i, part in enumerate(halves):
        shard = f"model-{i + 1:05d}-of-00002.safetensors"
        entries = [(t.name, t.dtype, list(t.shape)) for t in part]
        (dest / shard).write_bytes(header_bytes(entries) + b"".join(raw[t.start:t.end] for t in part))
        weight_map.update({t.name: shard for t in part})
    index = {"metadata": {"total_size": sum(t.end - t.start for t in tensors)}, "weight_map": weight_map}
    (dest / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return dest


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def _parse_or_refuse(raw: bytes, profile: str) -> Any:
    try:
        value = json_text.parse(raw, "fuzz")
    except json_text.JsonProblem as e:
        return e
    assert json_text.depth(value) <= json_text.MAX_DEPTH
    return value


def targets(work: Path, pool: list | None = None) -> dict[str, Target]:
    """The five targets, each over its own checkpoint under `work` (created here), of which it rewrites one file per
    input. `pool`, configs drawn from the schemas, feeds the config target only: bound to a layout, their layer and
    head counts (up to 10^5 a loop, GEN-6) cost up to a minute an input, so config_file mutates the real ones."""
    real = [json.loads(p.read_text()) for p in CONFIG_FILES]
    configs = real + list(pool or [])
    config_texts = [p.read_bytes() for p in CONFIG_FILES]
    with_config = shutil.copytree(CHECKPOINT, work / "config_file", dirs_exist_ok=True)
    with_header = shutil.copytree(CHECKPOINT, work / "header", dirs_exist_ok=True)
    sharded = write_sharded(CHECKPOINT, work / "index")
    index_text = (sharded / INDEX).read_bytes()
    headers = [p.read_bytes() for p in SAFETENSORS_FILES]
    header_docs = [json.loads(h[8:8 + struct.unpack_from("<Q", h)[0]]) for h in headers]
    config_donors, real_donors = donors(configs), donors(real)
    index_donors, header_donors = donors([json.loads(index_text)]), donors(header_docs)
    index_donors[1].extend(header_donors[0])  # tensor names and shard names from every fixture

    def run_config(config: Any, profile: str) -> Report:
        return check_report(validate_config(config, profile))

    def run_config_file(raw: bytes, profile: str) -> Report:
        (with_config / CONFIG).write_bytes(raw)
        return check_report(validate(with_config, profile))

    def run_header(raw: bytes, profile: str) -> Any:
        (with_header / SINGLE).write_bytes(raw)
        tensors, findings, _ = read_header(str(with_header / SINGLE), SINGLE)
        reported = check_report(Report(SINGLE, profile, under(findings, profile)))
        return check_report(validate(with_header, profile)) if tensors is not None else reported.findings

    def run_index(raw: bytes, profile: str) -> Report:
        (sharded / INDEX).write_bytes(raw)
        return check_report(validate(sharded, profile))

    return {
        "config": Target("config", configs, lambda rng, c: mutate_value(rng, c, *config_donors), run_config,
                         lambda c: json.dumps(c).encode(), every_profile=True),
        "config_file": Target("config_file", config_texts, lambda rng, s: mutate_text(rng, s, *real_donors),
                              run_config_file, _raw),
        "header": Target("header", headers, lambda rng, h: mutate_safetensors(rng, h, *header_donors),
                         run_header, _raw),
        "index": Target("index", [index_text], lambda rng, s: mutate_text(rng, s, *index_donors), run_index, _raw),
        "json": Target("json", config_texts + [index_text] + [h[8:8 + struct.unpack_from("<Q", h)[0]] for h in headers],
                       mutate_bytes, _parse_or_refuse, _raw),
    }


def algorithm_schema(profile: str, algorithm: str) -> dict:
    """The config schema of `profile` narrowed to one algorithm: its if/then branch taken, the others dropped
    (through the if/then chain over ten algorithms, hypothesis-jsonschema takes 4 to 7 s a config)."""
    schema = copy.deepcopy(schemas.load("config.strict.schema.json" if profile == "strict" else "config.schema.json"))
    schema.pop("$id")
    schema["allOf"] = [{"$ref": f"#/$defs/{algorithm}"}]
    schema["properties"]["speculators_model_type"] = {"const": algorithm}
    return schema


@cache
def algorithm_configs(profile: str, algorithm: str) -> st.SearchStrategy:
    """Configs of `algorithm` valid against the schema of `profile`: near-valid once the semantic checks run."""
    return from_schema(algorithm_schema(profile, algorithm))


def schema_configs(profile: str) -> st.SearchStrategy:
    """Configs of any algorithm valid against the schema of `profile`; each algorithm's strategy is built (about
    half a second) only when first drawn."""
    return st.sampled_from(sorted(ALGORITHMS)).flatmap(lambda algorithm: algorithm_configs(profile, algorithm))


# The high-count loop.

@dataclass
class Outcome:
    """What fuzzing one target found."""

    inputs: int = 0
    crashes: int = 0
    first: list[tuple[Any, str]] = field(default_factory=list)  # (input, traceback) of the first few
    kinds: dict[str, int] = field(default_factory=dict)  # "ExceptionType at file:line" -> count
    slowest: tuple[float, Any] = (0.0, None)


def fuzz(target: Target, count: int, rng: random.Random, keep: int = 5) -> Outcome:
    """Run `count` inputs through `target`, its seeds as they are and then mutants of them, catching and recording
    every exception."""
    out = Outcome()
    for i in range(count):
        value = target.seeds[i] if i < len(target.seeds) else target.mutate(rng, rng.choice(target.seeds))
        start = time.perf_counter()
        try:
            for profile in PROFILES if target.every_profile else (PROFILES[i % 2],):
                target.run(value, profile)
        except Exception as e:  # noqa: BLE001 - every escaping exception is what this loop counts
            out.crashes += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            kind = f"{type(e).__name__} at {Path(where.filename).name}:{where.lineno}"
            out.kinds[kind] = out.kinds.get(kind, 0) + 1
            if len(out.first) < keep:
                out.first.append((value, traceback.format_exc()))
        elapsed = time.perf_counter() - start
        if elapsed > out.slowest[0]:
            out.slowest = (elapsed, value)
        out.inputs += 1
    return out
