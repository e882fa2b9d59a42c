"""The implementation's expectations file: cases it skips or expects to fail, each with a reason.

Schema: conformance/meta/expectations.schema.json. An entry's id is an exact case id or an fnmatch
pattern; the first entry that matches a case applies to it. An entry that matches no case of the
suite is an error (a typo, or a case that was removed).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

from specfmt_conformance.suite import Case

STATUSES = ("skip", "xfail")
REASON = re.compile(r"\S(.*\S)?")  # one line, no surrounding blanks (the schema's pattern)


class ExpectationsError(Exception):
    """The expectations file is unreadable, malformed, or names no case."""


@dataclass(frozen=True)
class Expectation:
    id: str
    status: str
    reason: str

    def matches(self, case_id: str) -> bool:
        return self.id == case_id or fnmatch.fnmatchcase(case_id, self.id)


def _entry(index: int, raw: object) -> Expectation:
    where = f"entries[{index}]"
    if not isinstance(raw, dict) or set(raw) - {"id", "status", "reason"}:
        raise ExpectationsError(f"{where}: must be an object with only id, status and reason")
    if not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ExpectationsError(f"{where}.id: must be a non-empty string")
    if raw.get("status") not in STATUSES:
        raise ExpectationsError(f"{where}.status: must be one of {', '.join(STATUSES)}")
    if not isinstance(raw.get("reason"), str) or not REASON.fullmatch(raw["reason"]):
        raise ExpectationsError(f"{where}.reason: must be one non-blank line")
    return Expectation(raw["id"], raw["status"], raw["reason"])


def load_expectations(path: str | Path | None, cases: list[Case]) -> list[Expectation]:
    """The entries of the file at `path` (none without a file), each checked to match a case."""
    if path is None:
        return []
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExpectationsError(f"{path}: cannot read ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list) or set(doc) - {"$schema", "entries"}:
        raise ExpectationsError(f"{path}: must be an object with an entries list (and optionally $schema)")
    entries = [_entry(i, raw) for i, raw in enumerate(doc["entries"])]
    unmatched = [e.id for e in entries if not any(e.matches(case.id) for case in cases)]
    if unmatched:
        raise ExpectationsError(f"{path}: entries match no case: {', '.join(unmatched)}")
    return entries


def expectation_for(case: Case, entries: list[Expectation]) -> Expectation | None:
    return next((e for e in entries if e.matches(case.id)), None)
