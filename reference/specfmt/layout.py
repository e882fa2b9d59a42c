"""Layout binding: the tensors a config implies, from its layout document, against the tensors found.

Spec: spec/layout.md#LAY-3
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from specfmt import expr
from specfmt.findings import Finding, finding, mismatch, pointer
from specfmt.safetensors_header import DTYPES, TensorInfo
from specfmt.schemas import SAFETENSORS, layout

MAX_LOOP = 100_000  # a config claiming more layers or heads than this is refused, not expanded


@dataclass
class Expected:
    """One concrete tensor the layout document implies for this config."""

    name: str
    role: str
    dtype: str
    shape: list[int] | None
    shape_text: list[str]
    active: bool
    required: bool
    bindings: dict[str, int]
    entry: dict = field(repr=False)


@dataclass
class Binding:
    findings: list[Finding]
    symbols: dict[str, Any]
    rows: list[dict[str, Any]]


def _loops(loops: list[dict], scope: dict, config: dict, budget: int = MAX_LOOP):
    """Every assignment of the loop variables, outer loop first. Nested loops share the MAX_LOOP bound: each
    iteration of an outer loop leaves its inner loops `budget` divided by its own count (GEN-6), so that two
    loops of 10^5 each (medusa heads and layers) are refused rather than expanded into 10^10 tensors."""
    if not loops:
        yield {}
        return
    first, rest = loops[0], loops[1:]
    start = expr.evaluate(first.get("from", "0"), scope, config)
    stop = expr.evaluate(first["to"], scope, config)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop)):
        raise expr.ExprError(f"loop {first['var']}: bounds {start!r}..{stop!r} are not integers")
    if stop - start > budget:
        shared = "" if budget == MAX_LOOP else f" (what the loops around it leave of {MAX_LOOP})"
        raise expr.ExprError(f"loop {first['var']}: {stop - start} iterations exceed {budget}{shared}")
    for value in range(start, stop):
        for inner in _loops(rest, {**scope, first["var"]: value}, config, budget // (stop - start)):
            yield {first["var"]: value, **inner}


def expand(algorithm: str, config: dict) -> tuple[dict[str, Any], list[Expected], list[str]]:
    """The symbols, the concrete expected tensors and the expression errors for `config`."""
    doc = layout(algorithm)
    symbols: dict[str, Any] = {}
    errors: list[str] = []
    for name, symbol in doc["symbols"].items():
        try:
            symbols[name] = expr.evaluate(symbol["expr"], symbols, config)
        except expr.ExprError as e:
            symbols[name] = None
            errors.append(f"symbol {name} = {symbol['expr']}: {e}")
    expected: list[Expected] = []
    for entry in doc["tensors"]:
        try:  # all of an entry's instances or none: those before a failure do not count (LAY-3)
            expected += [_instantiate(entry, {**symbols, **bindings}, bindings, config)
                         for bindings in _loops(entry.get("for", []), symbols, config)]
        except expr.ExprError as e:
            errors.append(f"tensor {entry['name']}: {e}")
    return symbols, expected, errors


def _instantiate(entry: dict, scope: dict, bindings: dict, config: dict) -> Expected:
    for param, text in entry["params"].items():
        scope[param] = expr.evaluate(text, scope, config)
    active = expr.evaluate(entry.get("when", "true"), scope, config)
    if not isinstance(active, bool):
        raise expr.ExprError(f"condition {entry['when']!r} is {active!r}, not a boolean")
    shape = [expr.evaluate(text, scope, config) for text in entry["shape"]] if active else None
    if shape is not None and not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise expr.ExprError(f"shape {entry['shape']} evaluates to {shape}")
    return Expected(name=entry["name"].format(**bindings), role=entry["role"], dtype=entry["dtype"], shape=shape,
                    shape_text=entry["shape"], active=active,
                    required=entry.get("presence", "required") == "required", bindings=bindings, entry=entry)


def bind(algorithm: str, config: dict, found: dict[str, TensorInfo], weights_file: str,
         config_ok: bool, malformed: set[str] = frozenset()) -> Binding:
    """Compare the tensors `config` implies with the tensors `found`; collect every finding.
    A `malformed` name is stored but unreadable: already a header finding, never missing again.

    Spec: spec/layout.md#LAY-3
    """
    symbols, expected, errors = expand(algorithm, config)
    out: list[Finding] = []
    if errors and config_ok:
        out += [finding("layout.expression", "config.json", "", message) for message in errors]
    by_name: dict[str, list[Expected]] = defaultdict(list)
    for e in expected:
        by_name[e.name].append(e)
    active = {name: next((c for c in cs if c.active), None) for name, cs in by_name.items()}
    rows: list[dict[str, Any]] = []
    for name, e in active.items():
        tensor = found.get(name)
        if e is not None:
            rows.append(_row(e, tensor, status="malformed" if name in malformed else None))
            out += _check_present(e, tensor) if tensor else []
        elif tensor is not None:
            entry = by_name[name][0].entry
            out.append(finding(entry.get("forbidden_code", "layout.forbidden"), tensor.file, pointer(name),
                               f"{name} is present but its condition {entry['when']!r} is false",
                               expected="absent", found=list(tensor.shape)))
            rows.append(_row(by_name[name][0], tensor, status="forbidden"))
    stored = set(found) | set(malformed)
    layer_findings, collapsed = _missing_layers([e for e in active.values() if e], stored)
    out += layer_findings
    for name, e in active.items():
        if e and e.required and name not in stored and name not in collapsed:
            out.append(finding(e.entry.get("missing_code", "layout.missing"), weights_file, pointer(name),
                               f"required tensor {name} is absent", expected=e.shape, found=None))
    if not errors:  # with an unevaluated entry, a stored tensor may be expected after all
        out += _unexpected(algorithm, found, by_name)
    out += _dtype_consistency(config, found)
    rows += [{"name": name, "role": "", "dtype": "", "expected": None, "found": list(found[name].shape),
              "found_dtype": found[name].dtype, "status": "unexpected"} for name in sorted(set(found) - set(by_name))]
    return Binding(out, symbols, rows)


def _missing_layers(active: list[Expected], stored: set[str]) -> tuple[list[Finding], set[str]]:
    """One hazard.layers_missing per layer count whose trailing layers are all absent, and the
    names it covers. Only trailing layers after at least one stored layer qualify (the EAGLE-3
    converter keeps a prefix); any other gap is reported tensor by tensor.

    Spec: spec/layout.md#LAY-4
    """
    members: dict[str, dict[int, list[Expected]]] = defaultdict(lambda: defaultdict(list))
    for e in active:
        for loop in e.entry.get("for", []):
            if "layers_of" in loop:
                members[loop["layers_of"]][e.bindings[loop["var"]]].append(e)
    out, collapsed = [], set()
    for layers_of, layers in members.items():
        absent = {i for i, es in layers.items() if all(m.name not in stored for m in es if m.required)}
        first = min(absent, default=0)  # once: inside the set below it made 10^5 layers take minutes
        if first == 0 or absent != {i for i in layers if i >= first}:
            continue
        if first == min(layers) and _below_absent(active, stored, layers[first], first):
            continue  # every layer absent, those below the loop's start (eagle3's layers.0) included: m = 0
        out.append(finding("hazard.layers_missing", "config.json", layers_of,
                           mismatch(f"layers {sorted(absent)} have no tensors", "every layer stored",
                                    f"layers {sorted(absent)} absent"), found=sorted(absent)))
        collapsed |= {m.name for i in absent for m in layers[i]}
    return out, collapsed


def _below_absent(active: list[Expected], stored: set[str], lowest: list[Expected], start: int) -> bool:
    """Whether a layer below a loop that starts at `start` > 0 has no required tensor stored: the layers whose
    names differ from the loop's lowest layer only in its index (eagle3 and peagle declare `layers.0.` apart from
    their loop over layers 1 to L-1). A loop from 0 has none."""
    parts = lowest[0].name.split(".") if lowest else []
    if str(start) not in parts:
        return False
    head = ".".join(parts[:parts.index(str(start))])
    for layer in range(start):
        prefix = f"{head}.{layer}." if head else f"{layer}."
        required = [e.name for e in active if e.required and e.name.startswith(prefix)]
        if required and not any(name in stored for name in required):
            return True
    return False


def _row(e: Expected, tensor: TensorInfo | None, status: str | None = None) -> dict[str, Any]:
    if status is None:
        if tensor is None:
            status = "missing" if e.required else "absent (optional)"
        elif list(tensor.shape) != e.shape or DTYPES[tensor.dtype]["class"] != e.dtype:
            status = "mismatch"
        else:
            status = "ok"
    return {"name": e.name, "role": e.role, "dtype": e.dtype, "expected": e.shape,
            "found": list(tensor.shape) if tensor else None, "found_dtype": tensor.dtype if tensor else None,
            "status": status}


def _check_present(e: Expected, tensor: TensorInfo) -> list[Finding]:
    out = []
    if list(tensor.shape) != e.shape:
        code = e.entry.get("shape_code", "layout.shape")
        note = "[" + ", ".join(e.shape_text) + "]"
        out.append(finding(code, tensor.file, pointer(e.name, "shape"),
                           mismatch(f"{e.name} shape", e.shape, list(tensor.shape), note),
                           expected=e.shape, found=list(tensor.shape)))
    if DTYPES[tensor.dtype]["class"] != e.dtype:
        allowed = sorted(d for d, info in DTYPES.items() if info["class"] == e.dtype)
        out.append(finding("layout.dtype", tensor.file, pointer(e.name, "dtype"),
                           mismatch(f"{e.name} dtype outside class {e.dtype}", allowed, tensor.dtype),
                           expected=allowed, found=tensor.dtype))
    return out


def _unexpected(algorithm: str, found: dict[str, TensorInfo], by_name: dict) -> list[Finding]:
    forbidden = {f["name"]: f for f in layout(algorithm).get("forbidden", [])}
    out = []
    for name in sorted(set(found) - set(by_name)):
        tensor = found[name]
        if name in forbidden:
            out.append(finding(forbidden[name]["code"], tensor.file, pointer(name),
                               f"{name} must not be stored: {forbidden[name]['description']}",
                               expected="absent", found=list(tensor.shape)))
        else:
            out.append(finding("layout.unexpected", tensor.file, pointer(name),
                               f"{name} matches no tensor of the {algorithm} layout",
                               expected="absent", found=list(tensor.shape)))
    return out


def _dtype_consistency(config: dict, found: dict[str, TensorInfo]) -> list[Finding]:
    """Floating-point tensors are stored in the config's declared dtype.

    Spec: spec/hazards.md#hazard.dtype_mismatch
    """
    declared = config.get("dtype", config.get("torch_dtype"))
    want = SAFETENSORS["config_dtypes"].get(declared) if isinstance(declared, str) else None
    if want is None:
        return []
    return [finding("hazard.dtype_mismatch", t.file, pointer(t.name, "dtype"),
                    mismatch(f"{t.name} dtype differs from the config's dtype {declared!r}", want, t.dtype),
                    expected=want, found=t.dtype)
            for t in sorted(found.values(), key=lambda t: t.name)
            if DTYPES[t.dtype]["class"] == "float" and t.dtype != want]

