"""Shared by the generators: paths, canonical JSON, ids, spec anchors and expected findings.

The builder variants and the corpus helpers are in conformance/generators/variants.py, the one place they are
declared (tests import them from there; nothing here imports tests/).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from specfmt.schemas import ALGORITHMS, CODES, VERSION

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "conformance"
SCHEMA_DIR = Path("cases") / "schema" / VERSION
CHECKPOINT_DIR = Path("cases") / "checkpoint" / VERSION
PROFILES = ("compat", "strict")
CHECKPOINT = "checkpoint"  # the checkpoint directory inside a case directory


def fresh_dir(path: Path) -> Path:
    """An empty directory at `path`, whatever was there before."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def dump(value: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(value), encoding="utf-8")


def slug(text: str) -> str:
    """An id word: lowercase, `_` and other separators as `-`."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def pointer_id(ptr: str) -> str:
    """A test id for a JSON Pointer: `/speculators_config/verifier/hidden_size` becomes
    `speculators-config.verifier.hidden-size`, the empty pointer `root`."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in ptr.split("/")[1:]]
    return ".".join(slug(t) for t in tokens) or "root"


def corpus_id(name: str) -> str:
    """`head--mtp_qwen3` -> `head.mtp-qwen3`."""
    return ".".join(slug(part) for part in name.split("--"))


def anchors(*extra: str, codes: list[str] = ()) -> list[str]:
    """Spec anchors: `extra` first, then the anchor of each code, without repeats."""
    out: list[str] = []
    for anchor in [*extra, *(CODES[code]["spec"] for code in codes)]:
        if anchor not in out:
            out.append(anchor)
    return out


def expected(report, checkpoint: Path | None = None) -> list[dict[str, str]]:
    """A report's findings as the suite states them, sorted: code, pointer, severity, and for a
    checkpoint the file, relative to it ("." for the checkpoint path itself, as io.not_found names it)."""
    rows = []
    for f in report.findings:
        row = {"code": f.code, "pointer": f.pointer, "severity": f.severity}
        if checkpoint is not None:
            row["file"] = "." if f.file == str(checkpoint) else f.file
        rows.append(row)
    return sorted(rows, key=lambda r: (r.get("file", ""), r["pointer"], r["code"]))


def get_path(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def manifest_algorithm(config: object) -> dict:
    """{"algorithm": name} for a manifest entry when `config` is an object whose speculators_model_type is a v1
    algorithm, else {}: it lets an adapter that implements some algorithms only be certified for those
    (PROTOCOL.md, supports.algorithms)."""
    name = config.get("speculators_model_type") if isinstance(config, dict) else None
    return {"algorithm": name} if isinstance(name, str) and name in ALGORITHMS else {}
