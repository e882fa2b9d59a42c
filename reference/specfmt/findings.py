"""Findings: every problem the validator reports, with a stable code, a place and a severity.

Spec: spec/index.md#GEN-4
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from specfmt.schemas import CODES, load

PROFILES = ("strict", "compat")
# The severity policy, declared once (codes.json `severity`): kind -> profile -> severity.
SEVERITY: dict[str, dict[str, str]] = load("codes.json")["severity"]["kinds"]
# The docs site's address, declared once beside the field it builds (findings.schema.json, x-specfmt-site).
SITE: str = load("findings.schema.json")["$defs"]["finding"]["properties"]["spec"]["x-specfmt-site"]


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON Pointer from unescaped reference tokens."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def spec_url(spec_path: str) -> str:
    """The docs URL of a rule that codes.json names by repository path: the site serves spec/X.md at spec/X/
    and spec/X/index.md at spec/X/, so spec/layout.md#SFT-4 is https://specfmt.dev/spec/layout/#SFT-4.

    Spec: spec/index.md#GEN-4 (the finding's spec; its form: findings.schema.json)
    """
    page, hashmark, anchor = spec_path.partition("#")
    directory, _, name = page.removesuffix(".md").rpartition("/")
    return SITE + directory + "/" + ("" if name == "index" else name + "/") + hashmark + anchor


def render(value: Any) -> str:
    """A value as it appears in messages: compact JSON."""
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: `file#pointer: message [code]`.

    Spec: spec/index.md#GEN-4
    """

    file: str
    pointer: str
    code: str
    message: str
    severity: str | None = "error"  # finding() leaves it None until a profile is applied: under()
    expected: Any = field(default=None, compare=False)
    found: Any = field(default=None, compare=False)
    spec: str = field(default="", compare=False)  # the rule's docs URL
    spec_path: str = field(default="", compare=False)  # the rule in the repository, as codes.json names it

    def __str__(self) -> str:
        line = f"{self.severity}: {self.file}#{self.pointer}: {self.message} [{self.code}]"
        # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 output can carry: print its escape instead.
        return line.encode("utf-8", "backslashreplace").decode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def finding(code: str, file: str, ptr: str, message: str, *, expected: Any = None, found: Any = None) -> Finding:
    """Build a finding without a severity: the profile is applied once, by whoever reports it (under())."""
    entry = CODES[code]  # KeyError here is a bug: every code is declared in codes.json
    return Finding(file=file, pointer=ptr, code=code, message=message, severity=None, expected=expected, found=found,
                   spec=spec_url(entry["spec"]), spec_path=entry["spec"])


def severity(code: str, profile: str) -> str:
    """The severity of `code` under `profile`, from the one table (codes.json `severity`).

    Spec: spec/index.md#GEN-4
    """
    return SEVERITY[CODES[code]["kind"]][profile]


def under(findings: Iterable[Finding], profile: str) -> list[Finding]:
    """The findings, each with the severity `profile` gives its code: the severity policy, applied once."""
    return [replace(f, severity=severity(f.code, profile)) for f in findings]


def mismatch(subject: str, expected: Any, found: Any, note: str = "") -> str:
    """The message template: `<subject> <problem>; expected <X>, found <Y>`."""
    extra = f" (= {note})" if note else ""
    return f"{subject}; expected {render(expected)}{extra}, found {render(found)}"


def counted(n: int, noun: str) -> str:
    """`1 error`, `0 errors`, `2 errors`: a count and its noun, singular for one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class Report:
    """Every finding for one checkpoint under one profile, sorted."""

    path: str
    profile: str
    findings: list[Finding]
    algorithm: str | None = None
    symbols: dict[str, Any] = field(default_factory=dict)
    tensors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[tuple[str, str]]:
        """The (code, pointer) pairs, which is what tests compare."""
        return {(f.code, f.pointer) for f in self.findings}

    def summary(self) -> str:
        verdict = "valid" if self.ok else "invalid"
        return (f"{self.path}: {verdict} under {self.profile} "
                f"({counted(len(self.errors), 'error')}, {counted(len(self.warnings), 'warning')})")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "profile": self.profile,
            "valid": self.ok,
            "algorithm": self.algorithm,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_json() for f in self.findings],
        }


class ValidationError(Exception):
    """Raised with every finding at once, never only the first."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__("\n".join(str(f) for f in findings))


class Refused(ValueError):
    """A request the spec requires a runtime to refuse, with the refusal code a conformance adapter reports
    (conformance/PROTOCOL.md 3.4): `refused.k_above_limit`, `refused.verifier` or `refused.draft`."""

    def __init__(self, refusal: str, message: str):
        self.refusal = refusal
        super().__init__(message)
