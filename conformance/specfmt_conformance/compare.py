"""Grading: the runner compares every answer itself, so adapters cannot grade themselves.

Findings compare as exact sets of (code, pointer, severity), and at the checkpoint level of (code, pointer,
severity, file). A failing case lists at most UNEXPECTED_CAP unexpected findings and counts the rest, so an adapter
that answers a million findings costs the report a few lines.
Tensors (numerics level) must match in dtype and shape exactly; values then compare "exact" or
"allclose" (|a - e| <= atol + rtol * |e| elementwise), with NaN matching NaN and infinities
matching exactly. The metrics are recorded whether or not the output passes.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path

from specfmt_conformance.tensors import Tensor, TensorFileError, read_tensors


class CaseError(ValueError):
    """The case data itself is unusable (a golden that cannot be read, an unknown compare rule)."""


UNEXPECTED_CAP = 100  # unexpected findings listed per failing case; the rest are only counted
SCHEMA_KEY = ("code", "pointer", "severity")
CHECKPOINT_KEY = (*SCHEMA_KEY, "file")


def _keyed(findings: list[dict], fields: tuple[str, ...]) -> dict[tuple, dict]:
    """Each finding by its graded fields, kept as those fields alone (an adapter's message may be any size)."""
    return {tuple(f.get(k) for k in fields): {k: f[k] for k in fields if k in f} for f in findings}


def _order(key: tuple) -> tuple[str, ...]:
    return tuple("" if v is None else v for v in key)


def compare_findings(expected: list[dict], actual: list[dict], valid: bool,
                     fields: tuple[str, ...] = SCHEMA_KEY) -> tuple[str, dict | None]:
    """("pass", None) iff the finding sets, graded on `fields`, are equal and the verdict agrees with `valid`."""
    want, got = _keyed(expected, fields), _keyed(actual, fields)
    missing = [want[k] for k in sorted(want.keys() - got.keys(), key=_order)]
    extra = got.keys() - want.keys()
    unexpected = [got[k] for k in heapq.nsmallest(UNEXPECTED_CAP, extra, key=_order)]  # sorted, at most the cap
    actual_valid = not any(f["severity"] == "error" for f in actual)
    if not missing and not extra and actual_valid == valid:
        return "pass", None
    cut = len(extra) - len(unexpected)
    if missing or extra:
        summary = f"{len(missing)} missing, {len(extra)} unexpected finding(s)" + (f", {cut} not listed" if cut else "")
    else:
        summary = f"findings match but the verdict does not: case says valid={str(valid).lower()}"
    detail = {"summary": summary, "missing": missing, "unexpected": unexpected,
              "expected_valid": valid, "actual_valid": actual_valid}
    return "fail", {**detail, "unexpected_cut": cut} if cut else detail


def _rule(name: str, rule: object) -> tuple[str, float, float]:
    if not isinstance(rule, dict) or rule.get("compare") not in ("exact", "allclose"):
        raise CaseError(f"output {name}: compare must be exact or allclose")
    if rule["compare"] == "exact":
        return "exact", 0.0, 0.0
    rtol, atol = rule.get("rtol"), rule.get("atol")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0 for t in (rtol, atol)):
        raise CaseError(f"output {name}: allclose needs non-negative rtol and atol")
    return "allclose", float(rtol), float(atol)


def _close(a: float, e: float, mode: str, rtol: float, atol: float) -> bool:
    if isinstance(a, float) and isinstance(e, float) and math.isnan(a) and math.isnan(e):
        return True
    if mode == "exact" or not (math.isfinite(a) and math.isfinite(e)):
        return a == e
    return abs(a - e) <= atol + rtol * abs(e)


def token_divergence(expected: Tensor, actual: Tensor) -> int | None:
    """First index where two 1-D integer sequences differ (the shorter length if one is a prefix)."""
    for i, (a, e) in enumerate(zip(actual.values, expected.values, strict=False)):
        if a != e:
            return i
    n, m = len(actual.values), len(expected.values)
    return None if n == m else min(n, m)


def _errors(expected: Tensor, actual: Tensor) -> tuple[float | None, float | None]:
    """Largest absolute and relative error over the pairs where both values are finite."""
    max_abs = max_rel = None
    for a, e in zip(actual.values, expected.values, strict=True):
        if not (math.isfinite(a) and math.isfinite(e)):
            continue
        diff = float(abs(a - e))
        max_abs = diff if max_abs is None else max(max_abs, diff)
        rel = diff / abs(e) if e != 0 else (0.0 if diff == 0 else None)
        if rel is not None:
            max_rel = rel if max_rel is None else max(max_rel, rel)
    return max_abs, max_rel


def compare_tensor(name: str, rule: object, expected: Tensor, actual: Tensor) -> tuple[dict, str | None]:
    """Metrics for one output and the problem found, or None when it passes."""
    mode, rtol, atol = _rule(name, rule)
    metrics: dict = {"compare": mode, "dtype": expected.dtype, "shape": list(expected.shape)}
    if mode == "allclose":
        metrics.update(rtol=rtol, atol=atol)
    one_d_ints = expected.dtype in ("I64", "I32") and len(expected.shape) == 1
    if one_d_ints and actual.dtype in ("I64", "I32") and len(actual.shape) == 1:
        metrics["token_divergence"] = token_divergence(expected, actual)
    if (actual.dtype, actual.shape) != (expected.dtype, expected.shape):
        metrics.update(found_dtype=actual.dtype, found_shape=list(actual.shape))
        return metrics, (f"expected {expected.dtype} {list(expected.shape)}, "
                         f"found {actual.dtype} {list(actual.shape)}")
    bad = [i for i, (a, e) in enumerate(zip(actual.values, expected.values, strict=True))
           if not _close(a, e, mode, rtol, atol)]
    max_abs, max_rel = _errors(expected, actual)
    metrics.update(max_abs=max_abs, max_rel=max_rel, mismatch_count=len(bad),
                   first_mismatch=bad[0] if bad else None)
    if not bad:
        return metrics, None
    return metrics, (f"{len(bad)} of {len(expected.values)} element(s) differ ({mode}); "
                     f"first at flat index {bad[0]}, max_abs {max_abs}, max_rel {max_rel}")


def compare_outputs(outputs: dict, expected_path: Path, actual_path: Path) -> tuple[str, dict | None, dict]:
    """(status, detail, metrics) for a numerics case whose adapter wrote `actual_path`."""
    try:
        expected = read_tensors(expected_path)
    except TensorFileError as e:
        raise CaseError(f"golden unreadable: {e}") from e
    try:
        actual = read_tensors(actual_path)
    except TensorFileError as e:
        return "fail", {"summary": f"outputs unreadable: {e}"}, {}
    metrics, problems = {}, {}
    for name, rule in outputs.items():
        if name not in expected:
            raise CaseError(f"output {name} is not in {expected_path.name}")
        if name not in actual:
            problems[name] = "missing from the outputs"
            continue
        metrics[name], problem = compare_tensor(name, rule, expected[name], actual[name])
        if problem:
            problems[name] = problem
    if not problems:
        return "pass", None, metrics
    summary = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
    return "fail", {"summary": summary, "outputs": problems}, metrics
