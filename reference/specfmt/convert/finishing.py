"""The parts of the finishing step (common.finish) every converter and upgrade end in: what the schema declares
(the defaults, the engine-default conflicts of CFG-11, what strict requires) read from it, and the verifier binding
completed from --verifier or refused where they disagree. Spec: spec/config.md#CFG-8, spec/config.md#CFG-11
"""

from __future__ import annotations

import json
import re
from typing import Any

from specfmt import hub
from specfmt.convert.common import COMPAT, FACTS, Decision, Refusal, VerifierFacts

DROPPED = ("auto_map",)  # strict forbids them and no reader needs them (GEN-5: never executed)
RENAMED = {"torch_dtype": "dtype"}  # transformers 4's names of strict fields
VERIFIER_NAMES = {"target_vocab_size": "vocab_size"}  # speculators' top-level names of verifier facts
MISMATCH = "convert.verifier_mismatch"


def dotted(pointer: str) -> str:
    return ".".join(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


def filled_defaults(original: Any, resolved: Any, path: str, decisions: list[Decision]) -> None:
    """A `default` decision for each value `resolved` holds that `original` lacks."""
    if not isinstance(resolved, dict) or not isinstance(original, dict):
        return
    for key, value in resolved.items():
        where = f"{path}.{key}" if path else key
        if key not in original:
            decisions.append(Decision("default", where, f"{json.dumps(value)} (the schema default, now explicit)"))
        else:
            filled_defaults(original[key], value, where, decisions)


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
