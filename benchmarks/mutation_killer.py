"""The conformance suite as a pytest module: the killer of `make mutation` (benchmarks/mutation.py).

One test per case of the suite, each run in this process through the runner's own executors
(specfmt_conformance.runner.execute) against the reference adapter's own serve loop, called in this process instead
of through a pipe: a mutant of the reference is killed exactly when the runner would grade one of the cases as
anything but `pass`. No unit test takes part. The suite is the committed one that benchmarks/mutation.py extracts
(SPECFMT_MUTATION_SUITE); without it, the installed default suite.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import pytest

from specfmt import conformance_adapter, expr
from specfmt_conformance.adapter import Adapter
from specfmt_conformance.runner import execute
from specfmt_conformance.session import Session
from specfmt_conformance.suite import DEFAULT_ROOT, Suite

SUITE = Suite(Path(os.environ.get("SPECFMT_MUTATION_SUITE", DEFAULT_ROOT)))


class InProcessAdapter(Adapter):
    """The runner's Adapter with the pipe replaced by a call: each message goes through the reference adapter's own
    serve loop (conformance_adapter.serve) on an in-memory stdin and stdout, so an exception or a refusal is
    answered exactly as the subprocess answers it (PROTOCOL.md), and `request` grades the answer as it always does."""

    alive = True

    def __init__(self):
        self.checker, self.timeout, self._seq = None, 30.0, 0

    def _call(self, message: dict) -> dict:
        stdin, stdout = sys.stdin, io.StringIO()
        try:
            sys.stdin = io.StringIO(json.dumps(message) + "\n")
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
                conformance_adapter.serve()
        finally:
            sys.stdin = stdin
        return json.loads(stdout.getvalue())

    def take_stderr(self) -> str:
        return ""


def session() -> Session:
    """A runner Session whose adapter is the in-process one (no hello: the reference declares every level)."""
    s = Session([], 30.0, SUITE.suite_version)
    s.adapter = InProcessAdapter()
    s.hello = conformance_adapter.hello({})
    return s


@pytest.fixture(autouse=True)
def cold_caches():
    """Each case starts with the expression cache empty, as a fresh adapter process does: mutmut forks its workers
    from a process that has run the whole suite, and a warm cache would hide every mutant of the parser."""
    expr._CACHE.clear()


@pytest.mark.parametrize("case", SUITE.cases, ids=[c.id for c in SUITE.cases])
def test_reference_passes_case(case):
    result = execute(session(), case, keep_loaded=False)
    assert result.status == "pass", f"{case.id}: {result.status}: {(result.detail or {}).get('summary', '')}"
