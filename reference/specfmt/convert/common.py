"""What every converter shares: reading a source's config and tensors without running code, the verifier facts,
the decisions a conversion makes, and the refusals that name the flag to supply.

A converter is a function `convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion`. It builds
the strict config and the tensors, records a Decision for each default it fills, convention it translates and
tensor it renames, drops or computes, and raises Refused when the intended value cannot be known from the source
(then each refusal names the `--set FIELD=VALUE` that supplies it). Nothing here imports a source's Python files
or unpickles: `.bin` and `.pt` files are read with torch.load(weights_only=True) only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specfmt import hub
from specfmt.schemas import LAYER_FAMILIES, load

# The kinds of decision; the provenance schema (specfmt_provenance.conversion) declares the same list.
KINDS = tuple(load("config.schema.json")["properties"]["specfmt_provenance"]["properties"]["conversion"]
              ["properties"]["decisions"]["items"]["properties"]["kind"]["enum"])
INDEX = "model.safetensors.index.json"
PICKLED = (".bin", ".pt", ".pth")
COMPAT = load("config.schema.json")
FACTS = tuple(COMPAT["$defs"]["verifier"]["x-specfmt-strict"]["required"])  # the verifier facts of CFG-8
LAYER_KEYS = tuple(dict.fromkeys(k for d in ("layer_config", *(f"layer_{f}" for f in LAYER_FAMILIES))
                                 for k in COMPAT["$defs"].get(d, {}).get("properties", {})))  # every decoder key


@dataclass(frozen=True)
class Decision:
    """One thing the converter decided: `kind` (KINDS), what it is about (a config field or a tensor pattern) and
    what was done, in words."""

    kind: str
    subject: str
    detail: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"decision kind {self.kind!r} is not one of {KINDS}")

    def line(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True)
class Refusal:
    """A value the converter cannot know: where it is (file and JSON Pointer), why, and the flag that supplies it."""

    file: str
    pointer: str
    message: str
    flag: str
    code: str = "convert.undecidable"

    def __str__(self) -> str:
        return f"error: {self.file}#{self.pointer}: {self.message}; supply {self.flag} [{self.code}]"


class Refused(Exception):
    """The conversion cannot go on; every refusal found, not only the first."""

    def __init__(self, refusals: list[Refusal]):
        self.refusals = refusals
        super().__init__("\n".join(map(str, refusals)))


class SourceError(Exception):
    """The source cannot be read as the format says (a missing file, a pickle that is not plain tensors)."""


@dataclass
class Source:
    """A source checkpoint: its directory (or file), its config.json (None when it has none) and its tensors."""

    path: Path
    config: dict | None
    tensors: dict[str, Any]
    files: list[str] = field(default_factory=list)


@dataclass
class Conversion:
    """What a converter made: the strict config, the tensors, and every decision in order."""

    config: dict
    tensors: dict[str, Any]
    decisions: list[Decision]


@dataclass(frozen=True)
class VerifierFacts:
    """The verifier a draft is bound to: its Hugging Face config and the hub id that names it (CFG-8); `name` is
    None for a local verifier given without --verifier-name (finish refuses it only where the draft names none)."""

    config: dict
    name: str | None

    @property
    def hidden_size(self) -> int:
        return self.config["hidden_size"]

    @property
    def num_layers(self) -> int:
        return self.config["num_hidden_layers"]

    @property
    def vocab_size(self) -> int:
        return self.config["vocab_size"]


def read_json(path: Path) -> Any:
    """A JSON document read as strictly and with the same bounds as a validator reads one (GEN-7), through the one
    reader (specfmt.files: a FIFO or a device is refused, never waited on)."""
    from specfmt import files

    try:
        return files.read_json(path, path)
    except files.FileRefused as e:
        raise SourceError(str(e)) from None


def read_tensors(path: Path, only: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    """Every tensor of a directory (a shard index, else every .safetensors file, else every .bin/.pt/.pth file) or
    of one file, as CPU tensors; `only` keeps the files named so. Pickled files are read with weights_only=True.
    Every file is read through specfmt.files: an index's shards stay inside the directory (index.path), only
    regular files are opened, a safetensors header is checked in full before its data is read."""
    import torch

    from specfmt import files

    try:
        if not path.is_dir():
            paths = [path]
        elif (path / INDEX).exists() or (path / INDEX).is_symlink():
            index = files.read_json(path / INDEX, path / INDEX)
            paths = sorted(set(files.index_shards(path, index, path / INDEX).values()))
        else:
            paths = sorted(path.glob("*.safetensors")) or sorted(p for p in path.iterdir() if p.suffix in PICKLED)
        paths = [f for f in paths if not only or f.name in only]
        if not paths:
            raise SourceError(f"{path}: no weights (safetensors, or .bin/.pt read with weights_only=True)")
        tensors: dict[str, Any] = {}
        for f in paths:
            if f.suffix == ".safetensors":
                tensors.update(files.read_safetensors(f, f))
                continue
            with files.open_regular(f) as handle:
                try:
                    state = torch.load(handle, map_location="cpu", weights_only=True)
                except Exception as e:  # torch refuses anything but tensors and plain containers
                    raise SourceError(f"{f}: not a plain tensor file (read with weights_only=True): {e}") from None
            if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
                raise SourceError(f"{f}: expected a flat dict of tensors, found {type(state).__name__}")
            tensors.update(state)
    except files.FileRefused as e:
        raise SourceError(str(e)) from None
    return tensors, [f.name for f in paths]


def read_source(path: Path, only: tuple[str, ...] = ()) -> Source:
    """A source directory: config.json when present (a JSON object, else refused) and its tensors."""
    from specfmt import files
    from specfmt.reader_facts import check_reader_facts

    config = None
    if (path / "config.json").exists() or (path / "config.json").is_symlink():
        config = read_json(path / "config.json")
        if not isinstance(config, dict):
            raise SourceError(str(files.not_object(path / "config.json", "", config)))
    tensors, names = read_tensors(path, only)
    if config is not None:  # every size a converter computes with, widths bounded by the elements read
        try:
            check_reader_facts(config, str(path / "config.json"), elements=sum(t.numel() for t in tensors.values()))
        except files.FileRefused as e:
            raise SourceError(str(e)) from None
    return Source(path, config, tensors, names)


def verifier_facts(arg: str, name: str | None) -> VerifierFacts:
    """The verifier of `--verifier`: a Hugging Face directory or its config.json, or a hub id in the local cache.
    `name` (--verifier-name) is the hub id written as name_or_path; without it, a hub id given or a cache snapshot
    path names it; a plain local path leaves it None (finish refuses it where the draft names no hub id, CFG-8)."""
    path = Path(arg)
    if not path.exists() and hub.parse(arg) is not None:
        snapshot = hub.snapshot(arg)
        if snapshot is None:
            raise SourceError(hub.not_cached(arg))
        name, path = name or arg.split("@")[0], snapshot
    file = path if path.is_file() else path / "config.json"
    config = read_json(file)
    if not isinstance(config, dict):
        raise SourceError(f"{file}: the verifier config is not a JSON object")
    text = config.get("text_config")
    if "hidden_size" not in config and isinstance(text, dict):  # Mistral3 and other multimodal wrappers
        config = dict(text, architectures=config.get("architectures", text.get("architectures", [])))
    missing = [k for k in FACTS if k not in config]
    if missing:
        raise SourceError(f"{file}: the verifier config lacks {missing}")
    return VerifierFacts(config, name or hub.name_of(path))


def some_names(names: list[str], shown: int = 3) -> str:
    """A list of tensor names for a one-line message: the first `shown` as JSON, then how many there are in all."""
    head = json.dumps(names[:shown])
    return head if len(names) <= shown else f"{head[:-1]}, ...] ({len(names)} tensors)"


def float_dtype(tensors: dict, where: str) -> str:
    """The one float dtype of `tensors`, as config.json names it (`bfloat16`); SourceError naming `where` when they
    hold several."""
    names = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()})
    if len(names) != 1:
        raise SourceError(f"{where}: expected the float tensors in one dtype, found {json.dumps(names)}")
    return names[0]


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """`--set FIELD=VALUE` pairs: FIELD a dotted config path, VALUE JSON (a bare word is a string)."""
    given: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE")
        try:
            given[key] = json.loads(text)
        except ValueError:
            given[key] = text
    return given


def layer_config(source: dict, keys: tuple[str, ...] = LAYER_KEYS) -> dict:
    """The decoder keys (the schema's, or those `keys` name) of a Hugging Face config that a
    transformer_layer_config carries."""
    out = {k: source[k] for k in keys if k in source}
    if out.get("model_type") not in LAYER_FAMILIES:
        out["model_type"] = "llama"
    return out


def renamed(tensors: dict, rules: list[tuple[str, str]], decisions: list[Decision],
            drop: tuple[str, ...] = ()) -> dict:
    """Tensors renamed by the first matching (regex, replacement) rule; names matching a `drop` regex are left out.
    One Decision per rule and per dropped pattern, with the number of tensors it touched; a name no rule or drop
    matches is kept as it is."""
    out, counts, dropped = {}, dict.fromkeys((r for r, _ in rules), 0), dict.fromkeys(drop, 0)
    for name, t in tensors.items():
        gone = next((d for d in drop if re.fullmatch(d, name)), None)
        if gone is not None:
            dropped[gone] += 1
            continue
        rule = next(((r, new) for r, new in rules if re.fullmatch(r, name)), None)
        if rule is None:
            out[name] = t
            continue
        counts[rule[0]] += 1
        out[re.sub(rule[0], rule[1], name)] = t
    decisions += [Decision("renamed", r, f"-> {new} ({counts[r]} tensor{'s' * (counts[r] != 1)})")
                  for r, new in rules if counts[r]]
    decisions += [Decision("dropped", d, f"{dropped[d]} tensor{'s' * (dropped[d] != 1)} not part of the v1 layout")
                  for d in drop if dropped[d]]
    return out


def apply_given(config: dict, given: dict[str, Any], decisions: list[Decision]) -> dict:
    """Write each `--set` value into the config (a dotted path; a number indexes a list, as in
    speculators_config.proposal_methods.0.proposal_type), recording it as given. SourceError names a path that runs
    through a value that is no object, or past a list's end."""
    for key, value in given.items():
        *parents, last = key.split(".")
        node: Any = config
        for depth, part in enumerate([*parents, last]):
            where = ".".join([*parents, last][:depth]) or "the config"
            if isinstance(node, list) and not (part.isdigit() and int(part) < len(node)):
                raise SourceError(f"--set {key}: {where} is a list of {len(node)}, so {part!r} names no item of it")
            if not isinstance(node, (dict, list)):
                raise SourceError(f"--set {key}: {where} is {json.dumps(node)}, not an object")
            if depth == len(parents):
                node[int(part) if isinstance(node, list) else part] = value
            else:
                node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        decisions.append(Decision("given", key, f"{json.dumps(value)} from --set"))
    return config


def aux_fallback(algorithm: str, n: int) -> list[int]:
    """The aux layer ids engines read for null ids (the schema's x-specfmt-fallback) for a verifier of n layers."""
    from specfmt import expr
    from specfmt.defaults import applicable_properties

    props = applicable_properties({"speculators_model_type": algorithm}, COMPAT)
    return [expr.evaluate(e, {"N": n}, {}) for e in props["eagle_aux_hidden_state_layer_ids"]["x-specfmt-fallback"]]


def finish(config: dict, tensors: dict, decisions: list[Decision], given: dict[str, Any], source: str,
           verifier: VerifierFacts | None, refusals: list[Refusal] = (), shapes: dict | None = None) -> Conversion:
    """The one tail of every conversion: fields strict forbids dropped and older names translated, the verifier
    binding completed from --verifier (every fact on which they disagree refused at once), engine-default conflicts
    refused unless --set states them (CFG-11), --set applied, every schema default made explicit, the format
    version declared, and what strict still lacks refused with the --set that supplies it. Refused carries the
    converter's pending `refusals` with all of these; `shapes` (name -> shape, the tensors' by default) are
    checked against the shapes the verifier's facts give them. Spec: spec/config.md#CFG-8, CFG-11"""
    from specfmt.convert.finishing import (
        MISMATCH,
        bind_verifier,
        engine_conflicts,
        filled_defaults,
        renamed_fields,
        shape_conflicts,
        strict_refusals,
    )
    from specfmt.defaults import resolve
    from specfmt.schemas import VERSION

    where, refusals = f"{source}/config.json", list(refusals)
    out = renamed_fields(json.loads(json.dumps(config)), decisions)
    refusals += [r for r in engine_conflicts(out, given, where) if r.pointer not in {x.pointer for x in refusals}]
    out = apply_given(out, given, decisions)
    filled, conflicts = bind_verifier(out, verifier, where, decisions, refusals)
    resolved = resolve(out)
    filled_defaults(out, resolved, "", decisions)
    if resolved.get("speculators_format_version") != VERSION:
        decisions.append(Decision("translated", "speculators_format_version",
                                  f"{json.dumps(resolved.get('speculators_format_version'))} -> \"{VERSION}\""))
        resolved["speculators_format_version"] = VERSION
    more, mismatches = strict_refusals(resolved, where, [r.pointer for r in refusals if r.pointer], filled)
    shapes = {k: tuple(t.shape) for k, t in tensors.items()} if shapes is None else shapes
    conflicts += mismatches + shape_conflicts(resolved, shapes, filled)
    if conflicts:
        refusals.append(Refusal(where, "/speculators_config/verifier", "the checkpoint and --verifier disagree: "
                                + "; ".join(conflicts), "--verifier PATH (the checkpoint's own verifier)", MISMATCH))
    if refusals or more:
        raise Refused(refusals + more)
    return Conversion(resolved, tensors, decisions)
