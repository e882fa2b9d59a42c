"""Running the selected cases: applicability, expectations, one executor per level, grading.

Statuses: pass, fail, skip, xfail, xpass, error, crash, not-applicable. A case outside the
adapter's `supports` is not-applicable and never sent. An expectations skip is never sent either;
an xfail case runs, and passing it is an xpass, which fails the run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from specfmt_conformance.adapter import AdapterCrash, AdapterError, AdapterTimeout, ProtocolError
from specfmt_conformance.compare import CHECKPOINT_KEY, CaseError, compare_findings, compare_outputs
from specfmt_conformance.expectations import Expectation, expectation_for
from specfmt_conformance.session import Session
from specfmt_conformance.suite import Case, SuiteError

STDERR_EXCERPT = 4000  # characters of a case's stderr kept in the report (its end)
Outcome = tuple[str, "dict | None", dict]  # status, detail, metrics


@dataclass
class Result:
    id: str
    level: str
    status: str
    duration_s: float = 0.0
    detail: dict | None = None
    metrics: dict = field(default_factory=dict)
    stderr: str = ""


def _findings(answer: dict, need_file: bool = False) -> list[dict]:
    """The answer's findings; at the checkpoint level each also names its `file` (PROTOCOL.md 3.2)."""
    findings = answer.get("findings")
    if not isinstance(findings, list) or not all(
            isinstance(f, dict) and isinstance(f.get("code"), str) and isinstance(f.get("pointer"), str)
            and f.get("severity") in ("error", "warning") and isinstance(f.get("file", ""), str) for f in findings):
        raise ProtocolError("validate answer needs findings: [{code, pointer, severity}], file a string")
    if need_file and not all("file" in f for f in findings):
        raise ProtocolError("a checkpoint validate answer needs the file of every finding")
    return findings


def run_schema(session: Session, case: Case, keep_loaded: bool) -> Outcome:
    answer = session.request("validate", profile=case.profile, document=case.doc["test"]["data"])
    status, detail = compare_findings(case.expected["findings"], _findings(answer), case.expected["valid"])
    return status, detail, {}


def run_checkpoint(session: Session, case: Case, keep_loaded: bool) -> Outcome:
    scan = {"scan_values": True} if case.doc.get("scan_values") else {}  # sent only when a case asks for it
    answer = session.request("validate", profile=case.profile,
                             checkpoint_dir=str(case.resolve(case.doc["checkpoint"])), **scan)
    status, detail = compare_findings(case.expected["findings"], _findings(answer, need_file=True),
                                      case.expected["valid"], CHECKPOINT_KEY)
    return status, detail, {}


def model_pair(case: Case) -> tuple[Path | None, Path | None]:
    """The draft checkpoint and verifier directories; None where case.json names none (verification rules)."""
    return tuple(None if case.doc[key] is None else case.resolve(case.doc[key], fallback_to_root=True)
                 for key in ("checkpoint", "verifier"))


def run_numerics(session: Session, case: Case, keep_loaded: bool) -> Outcome:
    if case.doc.get("refusal") is not None:
        return run_refusal(session, case, keep_loaded)
    handle = session.load(*model_pair(case))
    doc = case.doc
    with tempfile.TemporaryDirectory(prefix="specfmt-conformance-") as tmp:
        outputs = Path(tmp) / "outputs.safetensors"
        answer = session.request("run", handle=handle, case_id=case.id, operation=doc["operation"],
                                 params=doc["params"], inputs=str(case.resolve(doc["inputs"])),
                                 outputs=str(outputs))
        if answer.get("skipped") is True:
            outcome = "skip", {"summary": f"skipped by the adapter: {answer.get('reason', '')}",
                               "reason": answer.get("reason", "")}, {}
        elif answer.get("ok") is True:
            outcome = compare_outputs(doc["outputs"], case.resolve(doc["expected"]), outputs)
        else:
            raise ProtocolError("run answer is neither ok, skipped nor error")
    if not keep_loaded:
        session.unload()
    return outcome


def run_refusal(session: Session, case: Case, keep_loaded: bool) -> Outcome:
    """A request the spec requires refused (PROTOCOL.md 3.4): its load or its run must be answered with an error
    whose `code` is the case's `refusal`; an answer that computes outputs, or another code, fails."""
    code, doc = case.doc["refusal"], case.doc
    try:
        handle = session.load(*model_pair(case))
        with tempfile.TemporaryDirectory(prefix="specfmt-conformance-") as tmp:
            answer = session.request("run", handle=handle, case_id=case.id, operation=doc["operation"],
                                     params=doc["params"], inputs=str(case.resolve(doc["inputs"])),
                                     outputs=str(Path(tmp) / "outputs.safetensors"))
    except AdapterError as e:
        if e.code == code:
            return "pass", None, {}
        return "fail", {"summary": f"refused with code {e.code!r} ({e}), expected {code!r}", "refusal": code,
                        "found_code": e.code}, {}
    if not keep_loaded:
        session.unload()
    if answer.get("skipped") is True:
        return "skip", {"summary": f"skipped by the adapter: {answer.get('reason', '')}",
                        "reason": answer.get("reason", "")}, {}
    return "fail", {"summary": f"answered a request the spec requires refused with {code!r}", "refusal": code}, {}


EXECUTORS: dict[str, Callable[[Session, Case, bool], Outcome]] = {
    "schema": run_schema,
    "checkpoint": run_checkpoint,
    "numerics": run_numerics,
}


def execute(session: Session, case: Case, keep_loaded: bool) -> Result:
    """Run one applicable case and grade it; adapter failures become error or crash."""
    start = time.monotonic()
    try:
        session.ensure()
        status, detail, metrics = EXECUTORS[case.level](session, case, keep_loaded)
    except AdapterCrash as e:
        status, detail, metrics = "crash", {"summary": str(e), "reason": "crash"}, {}
    except AdapterTimeout as e:
        status, detail, metrics = "error", {"summary": str(e), "reason": "timeout"}, {}
    except AdapterError as e:
        status, detail, metrics = "error", {"summary": f"adapter error: {e}", "reason": "adapter-error"}, {}
    except ProtocolError as e:
        status, detail, metrics = "error", {"summary": str(e), "reason": "protocol"}, {}
    except (CaseError, SuiteError) as e:
        status, detail, metrics = "error", {"summary": f"case data: {e}", "reason": "case"}, {}
    duration = time.monotonic() - start
    stderr = session.take_stderr()[-STDERR_EXCERPT:]
    return Result(case.id, case.level, status, round(duration, 6), detail, metrics, stderr)


def apply_xfail(result: Result, entry: Expectation) -> Result:
    """Strict xfail: a pass becomes xpass; fail, error and crash become xfail; a skip stays a skip."""
    if result.status == "pass":
        result.status = "xpass"
        result.detail = {"summary": f"expected to fail ({entry.reason}) but passed", "reason": entry.reason}
    elif result.status in ("fail", "error", "crash"):
        summary = (result.detail or {}).get("summary", "")
        result.detail = {**(result.detail or {}), "summary": f"expected failure ({entry.reason}): {summary}",
                         "reason": entry.reason, "actual": result.status}
        result.status = "xfail"
    return result


def _keep_loaded(session: Session, plan: list[tuple[Case, str | None, Expectation | None]]) -> list[bool]:
    """For each planned case: whether the next numerics case that runs uses the same model pair."""
    keep, next_pair = [False] * len(plan), None
    for i in range(len(plan) - 1, -1, -1):
        case, na, entry = plan[i]
        if case.level != "numerics" or na or (entry and entry.status == "skip"):
            continue
        pair = model_pair(case)
        keep[i], next_pair = pair == next_pair, pair
    return keep


def run_cases(session: Session, cases: list[Case], entries: list[Expectation],
              progress: Callable[[int, int, Result], None] | None = None) -> list[Result]:
    """Every selected case, in manifest order, as one result each."""
    plan = [(case, session.not_applicable(case), expectation_for(case, entries)) for case in cases]
    keep = _keep_loaded(session, plan)
    results = []
    for i, (case, na, entry) in enumerate(plan):
        if na:
            result = Result(case.id, case.level, "not-applicable", detail={"summary": na, "reason": "not-declared"})
        elif entry and entry.status == "skip":
            result = Result(case.id, case.level, "skip",
                            detail={"summary": f"skipped by expectations: {entry.reason}", "reason": entry.reason})
        else:
            result = execute(session, case, keep[i])
            if entry:
                result = apply_xfail(result, entry)
        results.append(result)
        if progress:
            progress(i + 1, len(plan), result)
    return results
