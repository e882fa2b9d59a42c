"""Why a mutant survived the suite: what it changes that the protocol does not carry (benchmarks/mutation.py).

Run by `benchmarks/mutation.py --classify` in mutmut's work directory, on the mutated copy of the reference
(mutants/src, which switches mutant by MUTANT_UNDER_TEST). For each surviving mutant it runs the cases of the levels
that reach its module, through the reference's own functions instead of the protocol, and compares everything they
return with what the unmutated reference returns: a finding's message, expected and found values, the report's other
fields (algorithm, symbols, tensors), the text of an error, and stops at the first case where any differs. A
survivor passed every case through the protocol, so what differs is what the protocol does not carry, and no case
can kill the mutant. A mutant that changes nothing here either is left for a person to judge (a true equivalent,
or a behaviour the suite does not reach).

Usage: python mutation_observe.py NAMES.json OUT.json (NAMES.json: a list of mutmut names).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file

from specfmt import conformance_adapter, expr, validate, validate_config
from specfmt_conformance.suite import Suite

SUITE = Suite(Path(os.environ["SPECFMT_MUTATION_SUITE"]))
LEVELS_BY_MODULE = {"verification": ("numerics",), "binding": ("numerics",)}
LEVELS = ("schema", "checkpoint")


def report_view(report) -> dict:
    """Every field of a report, the findings' unprotocolled fields included, as comparable JSON-like values."""
    return {"findings.message": [f.message for f in report.findings],
            "findings.expected": [repr(f.expected) for f in report.findings],
            "findings.found": [repr(f.found) for f in report.findings],
            "findings.file": [f.file for f in report.findings],
            "findings": [(f.pointer, f.code, f.severity) for f in report.findings],
            "report.algorithm": report.algorithm, "report.symbols": repr(report.symbols),
            "report.tensors": repr(report.tensors)}


def numerics_view(case) -> dict:
    """The load and run answers, and the text of any error either raised."""
    view = {}
    with tempfile.TemporaryDirectory() as tmp:
        doc = case.doc
        message = {"cmd": "load", "seq": 1, "options": {},
                   "checkpoint_dir": doc["checkpoint"] and str(case.resolve(doc["checkpoint"], True)),
                   "verifier_dir": doc["verifier"] and str(case.resolve(doc["verifier"], True))}
        try:
            handle = conformance_adapter.handle(message)["handle"]
            run = {"cmd": "run", "seq": 2, "handle": handle, "operation": doc["operation"], "params": doc["params"],
                   "inputs": str(case.resolve(doc["inputs"])), "outputs": str(Path(tmp) / "out.safetensors")}
            conformance_adapter.handle(run)
            view["outputs"] = {k: v.tolist() for k, v in sorted(load_file(run["outputs"]).items())}
        except Exception as e:  # noqa: BLE001 - an error's text is what is compared
            view["error.code"] = getattr(e, "refusal", None)
            view["error.text"] = f"{type(e).__name__}: {e}"
    return view


def view(case) -> dict:
    expr._CACHE.clear()
    if case.level == "schema":
        return report_view(validate_config(case.doc["test"]["data"], case.profile))
    if case.level == "checkpoint":
        return report_view(validate(case.resolve(case.doc["checkpoint"]), case.profile,
                                    scan_values=bool(case.doc.get("scan_values"))))
    return numerics_view(case)


def differences(name: str, cases: list, originals: dict) -> list[str]:
    """The fields that differ under mutant `name` in the first of `cases` where any does, sorted. A survivor passed
    every case through the protocol, so the fields it changes are ones the protocol does not carry; one case that
    shows them is enough to say what the mutant changes."""
    os.environ["MUTANT_UNDER_TEST"] = name
    try:
        for case in cases:
            try:
                mutated = view(case)
            except Exception as e:  # noqa: BLE001 - a crash the protocol answer hid
                return [f"raises {type(e).__name__}"]
            original = originals[case.id]
            fields = sorted(f for f in set(original) | set(mutated) if original.get(f) != mutated.get(f))
            if fields:
                return fields
    finally:
        os.environ["MUTANT_UNDER_TEST"] = ""
    return []


def main() -> int:
    names, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    os.environ["MUTANT_UNDER_TEST"] = ""
    modules = {name.split(".")[1] for name in names}
    levels = {level for m in modules for level in LEVELS_BY_MODULE.get(m, LEVELS)}
    cases = [c for c in SUITE.cases if c.level in levels]
    originals = {c.id: view(c) for c in cases}
    result = {}
    for name in names:
        module = name.split(".")[1]
        mine = [c for c in cases if c.level in LEVELS_BY_MODULE.get(module, LEVELS)]
        result[name] = differences(name, mine, originals)
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
