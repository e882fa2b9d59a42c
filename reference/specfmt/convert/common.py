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
    if config is not None:  # every size a converter computes with, bounded by the tensors read
        try:
            check_reader_facts(config, str(path / "config.json"), len(tensors),
                               sum(t.numel() for t in tensors.values()))
        except files.FileRefused as e:
            raise SourceError(str(e)) from None
    return Source(path, config, tensors, names)


def verifier_facts(arg: str, name: str | None) -> VerifierFacts:
    """The verifier of `--verifier`: a Hugging Face directory or its config.json, or a hub id in the local cache.
    `name` (--verifier-name) is the hub id written as name_or_path; without it, a hub id given or a cache snapshot
    path names it, and a plain local path is refused (strict requires a hub id, CFG-8)."""
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


# The finishing step every converter and upgrade end in: what the schema declares (defaults, the engine-default
# conflicts of CFG-11, what strict requires) is read from it here, once.
DROPPED = ("auto_map",)  # strict forbids them and no reader needs them (GEN-5: never executed)
RENAMED = {"torch_dtype": "dtype"}  # transformers 4's names of strict fields
VERIFIER_NAMES = {"target_vocab_size": "vocab_size"}  # speculators' top-level names of verifier facts
MISMATCH = "convert.verifier_mismatch"


def dotted(pointer: str) -> str:
    return ".".join(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


def aux_fallback(algorithm: str, n: int) -> list[int]:
    """The aux layer ids engines read for null ids (the schema's x-specfmt-fallback) for a verifier of n layers."""
    from specfmt import expr
    from specfmt.defaults import applicable_properties

    props = applicable_properties({"speculators_model_type": algorithm}, COMPAT)
    return [expr.evaluate(e, {"N": n}, {}) for e in props["eagle_aux_hidden_state_layer_ids"]["x-specfmt-fallback"]]


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


def engine_conflicts(config: dict, given: dict, where: str) -> list[Refusal]:
    """A refusal per absent field whose absence engines read differently (x-specfmt-engine-defaults, CFG-11)."""
    from specfmt.defaults import applicable_properties

    out = []
    for name, prop in applicable_properties(config, COMPAT).items():
        readings = prop.get("x-specfmt-engine-defaults")
        if readings and name not in config and name not in given:
            what = ", ".join(f"{engine} reads {json.dumps(v)}" for engine, v in readings.items())
            values = "|".join(dict.fromkeys(v if isinstance(v, str) else json.dumps(v) for v in readings.values()))
            out.append(Refusal(where, f"/{name}", f"{name} is absent and engines read it differently ({what})",
                               f"--set {name}={values}"))
    return out


def renamed_fields(config: dict, decisions: list[Decision]) -> dict:
    """Fields dropped (auto_map) and older names translated (torch_dtype -> dtype), each recorded."""
    out = {k: v for k, v in config.items() if k not in DROPPED}
    decisions += [Decision("dropped", key, "strict forbids it; specfmt never runs code it points to")
                  for key in DROPPED if config.get(key) is not None]
    for old, new in RENAMED.items():
        if old in out and new not in out:
            out[new] = out[old]
            decisions.append(Decision("translated", new, f"{json.dumps(out[old])} from {old}, transformers 4's "
                                      "name for it"))
    return out


def bind_verifier(config: dict, verifier: VerifierFacts | None, where: str, decisions: list[Decision],
                  refusals: list[Refusal]) -> tuple[set[str], list[str]]:
    """speculators_config.verifier completed from the source's other names for its facts and from --verifier; the
    facts filled from --verifier, and each fact on which the checkpoint and --verifier disagree (both values)."""
    sc = config.get("speculators_config")
    block = sc.get("verifier") if isinstance(sc, dict) else None
    if not isinstance(block, dict):  # strict names what is wrong with it
        return set(), []
    for alias, key in VERIFIER_NAMES.items():
        if alias in config and key not in block:
            block[key] = config[alias]
            decisions.append(Decision("translated", f"speculators_config.verifier.{key}",
                                      f"{json.dumps(config[alias])} from {alias}, speculators' name for it"))
    named = isinstance(block.get("name_or_path"), str) and hub.parse(block["name_or_path"]) is not None
    known = verifier.config if verifier is not None else {}  # --verifier-name alone names it without facts
    missing = [k for k in FACTS if k not in block]
    nameless = not named and (verifier is None or verifier.name is None)
    unknown = [k for k in missing if k not in known] + ["name_or_path"] * nameless
    if unknown:  # strict names the verifier by hub id, never a local path (CFG-8)
        flag = " and ".join(["--verifier PATH (its config.json)"] * (unknown != ["name_or_path"])
                            + ["--verifier-name ORG/NAME"] * nameless)
        why = f"the verifier facts {json.dumps(unknown)} are absent"
        refusals.append(Refusal(where, "/speculators_config/verifier", why + " (a strict checkpoint names its "
                                "verifier by hub id, CFG-8)" * nameless, flag))
    if verifier is None:
        return set(), []
    conflicts = [f"{k} is {json.dumps(block[k])} in the checkpoint, {json.dumps(known[k])} in --verifier"
                 for k in FACTS if k in block and k in known and block[k] != known[k]]
    if named and verifier.name is not None and verifier.name != block["name_or_path"]:
        conflicts.append(f"name_or_path is {json.dumps(block['name_or_path'])} in the checkpoint, "
                         f"{json.dumps(verifier.name)} from --verifier-name")
    filled = {k: known[k] for k in missing if k in known}
    if not named and verifier.name is not None:
        filled["name_or_path"] = verifier.name
    for key, value in filled.items():
        block[key] = value
        decisions.append(Decision("given", f"speculators_config.verifier.{key}", f"{json.dumps(value)} from "
                                  + ("--verifier-name" if key == "name_or_path" else "--verifier")))
    return set(filled) - {"name_or_path"}, conflicts


def shape_conflicts(config: dict, shapes: dict[str, tuple], filled: set[str]) -> list[str]:
    """Tensors whose layout shape, derived from a verifier fact taken from --verifier, differs from the stored one."""
    from specfmt.layout import expand

    algorithm = config.get("speculators_model_type")
    symbols = layout_symbols(algorithm)
    tainted = {f"speculators_config.verifier.{k}": k for k in filled}
    for name, text in symbols.items():  # in order: a symbol reads the symbols declared before it
        keys = {k for ref, k in tainted.items() if re.search(rf"(?<![\w.]){re.escape(ref)}(?![\w])", text)}
        if keys:
            tainted[name] = "/".join(sorted(keys))
    if not filled or not symbols:
        return []
    out = []
    for e in expand(algorithm, config)[1]:
        found = shapes.get(e.name)
        keys = {k for ref, k in tainted.items() for text in e.shape_text if re.search(rf"\b{re.escape(ref)}\b", text)}
        if e.shape is not None and found is not None and list(found) != e.shape and keys:
            out.append(f"{e.name} is {json.dumps(list(found))}, where --verifier's {'/'.join(sorted(keys))} makes "
                       f"it {json.dumps(e.shape)}")
    return out


def layout_symbols(algorithm: Any) -> dict[str, str]:
    from specfmt.schemas import ALGORITHMS, layout

    return {n: s["expr"] for n, s in layout(algorithm)["symbols"].items()} if algorithm in ALGORITHMS else {}


def strict_refusals(resolved: dict, where: str, refused: list[str], filled: set[str]) -> tuple[list[Refusal], list]:
    """Refusals for what strict still finds (those under an already refused pointer aside), and apart the
    verifier mismatches a fact filled from --verifier caused."""
    from specfmt.validate import validate_config

    out, mismatches = [], []
    for f in validate_config(resolved, "strict").findings:
        if f.severity != "error" or any(f.pointer.startswith(p) for p in refused):
            continue
        if f.code == "config.verifier_mismatch" and any(f"verifier.{k}" in f.message for k in filled):
            mismatches.append(f"{dotted(f.pointer)} is {json.dumps(f.found)} in the checkpoint, "
                              f"{json.dumps(f.expected)} in --verifier")
            continue
        out.append(Refusal(where, f.pointer, f"strict: {f.message} [{f.code}]", f"--set {dotted(f.pointer)}=VALUE"))
    return out, mismatches


def finish(config: dict, tensors: dict, decisions: list[Decision], given: dict[str, Any], source: str,
           verifier: VerifierFacts | None, refusals: list[Refusal] = (), shapes: dict | None = None) -> Conversion:
    """The one tail of every conversion: fields strict forbids dropped and older names translated, the verifier
    binding completed from --verifier (every fact on which they disagree refused at once), engine-default conflicts
    refused unless --set states them (CFG-11), --set applied, every schema default made explicit, the format
    version declared, and what strict still lacks refused with the --set that supplies it. Refused carries the
    converter's pending `refusals` with all of these; `shapes` (name -> shape, the tensors' by default) are
    checked against the shapes the verifier's facts give them. Spec: spec/config.md#CFG-8, CFG-11"""
    from specfmt.defaults import resolve
    from specfmt.schemas import VERSION

    where, refusals = f"{source}/config.json", list(refusals)
    out = renamed_fields(json.loads(json.dumps(config)), decisions)
    refusals += [r for r in engine_conflicts(out, given, where) if r.pointer not in {x.pointer for x in refusals}]
    out = apply_given(out, given, decisions)
    filled, conflicts = bind_verifier(out, verifier, where, decisions, refusals)
    resolved = resolve(out)
    _filled(out, resolved, "", decisions)
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
