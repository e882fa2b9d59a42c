"""The suite on disk: manifest.json, its integrity check, and the cases it lists.

All manifest paths are relative to the suite root (the conformance/ directory, which the package ships as
specfmt_conformance/suite). Paths inside a
case.json are relative to the case directory; a checkpoint or verifier path that does not exist
there is looked up from the suite root. No path may leave the suite root.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from specfmt_conformance import LEVELS

# The suite this package ships: links to the conformance/ directory's files in a checkout, the files themselves
# once installed (the specfmt-conformance distribution), so no checkout is needed to find them.
DEFAULT_ROOT = (Path(__file__).resolve().parent / "suite" / "manifest.json").resolve().parent
META_DIR = DEFAULT_ROOT / "meta"  # the meta schemas shipped with this package, for a suite root that has none
# A numerics case.json has no meta schema yet; its keys are listed here, once.
NUMERICS_REQUIRED = ("id", "description", "since", "spec", "operation", "checkpoint", "verifier", "params", "inputs",
                     "expected", "outputs")


@cache
def required_keys(meta_dir: Path) -> dict[str, tuple[str, ...]]:
    """The keys each suite document must carry, read from the `required` of the meta schemas in `meta_dir`."""
    def read(name: str) -> dict:
        return json.loads((meta_dir / name).read_text(encoding="utf-8"))

    groups, manifest = read("schema-group.schema.json")["$defs"], read("manifest.schema.json")
    return {"schema-group": tuple(groups["group"]["required"]), "schema-test": tuple(groups["test"]["required"]),
            "checkpoint": tuple(read("checkpoint-case.schema.json")["required"]), "numerics": NUMERICS_REQUIRED,
            "manifest-case": tuple(manifest["properties"]["cases"]["items"]["required"])}


class SuiteError(Exception):
    """The suite cannot be used: a malformed manifest or case, or a failed integrity check."""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _require(obj: object, required: tuple[str, ...], where: str) -> dict:
    if not isinstance(obj, dict):
        raise SuiteError(f"{where}: expected a JSON object")
    absent = [key for key in required if key not in obj]
    if absent:
        raise SuiteError(f"{where}: missing {', '.join(absent)}")
    return obj


@dataclass(frozen=True)
class Case:
    """One case. `doc` is case.json, or for the schema level {"group": ..., "test": ...}."""

    id: str
    level: str
    path: str
    since: str
    doc: dict
    root: Path
    algorithm: str | None = None  # the manifest's algorithm of the case, when it exercises one

    @property
    def dir(self) -> Path:
        return self.root / self.path

    @property
    def profile(self) -> str | None:
        return self.doc["group"]["profile"] if self.level == "schema" else self.doc.get("profile")

    @property
    def expected(self) -> dict:
        """The expected answer of a schema or checkpoint case: valid and findings."""
        return self.doc["test"] if self.level == "schema" else self.doc

    def resolve(self, rel: str, fallback_to_root: bool = False) -> Path:
        """A path named in case.json, kept inside the suite root."""
        candidate = (self.dir / rel).resolve()
        if fallback_to_root and not candidate.exists():
            candidate = (self.root / rel).resolve()
        if not candidate.is_relative_to(self.root.resolve()):
            raise SuiteError(f"{self.id}: path {rel!r} leaves the suite root")
        return candidate

    def referenced_dirs(self) -> list[Path]:
        """Directories the case hands to an adapter, beyond its own files."""
        if self.level == "checkpoint":
            return [self.resolve(self.doc["checkpoint"])]
        if self.level == "numerics":
            return [self.resolve(self.doc[key], fallback_to_root=True) for key in ("checkpoint", "verifier")
                    if self.doc[key] is not None]
        return []


class Suite:
    """A suite root with a verified manifest."""

    def __init__(self, root: Path = DEFAULT_ROOT):
        self.root = Path(root).resolve()
        path = self.root / "manifest.json"
        try:
            raw = path.read_bytes()
            self.manifest = json.loads(raw)
        except (OSError, ValueError) as e:
            raise SuiteError(f"{path}: cannot read the manifest ({e})") from e
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        meta = self.root / "meta"
        self.required = required_keys(meta if (meta / "manifest.schema.json").is_file() else META_DIR)
        kinds = {"suite_version": (str, "string"), "format_version": (str, "string"),
                 "cases": (list, "list"), "files": (dict, "object")}
        for key, (kind, name) in kinds.items():
            if not isinstance(self.manifest, dict) or not isinstance(self.manifest.get(key), kind):
                raise SuiteError(f"{path}: {key} must be a JSON {name}")

    @property
    def suite_version(self) -> str:
        return self.manifest["suite_version"]

    @property
    def format_version(self) -> str:
        return self.manifest["format_version"]

    def _inside(self, rel: str) -> Path:
        target = (self.root / rel).resolve()
        if Path(rel).is_absolute() or not target.is_relative_to(self.root):
            raise SuiteError(f"manifest path {rel!r} leaves the suite root")
        return target

    def verify(self) -> None:
        """Refuse a suite whose files differ from the manifest's sha256, or that has unlisted files."""
        problems = []
        for rel, digest in sorted(self.manifest["files"].items()):
            target = self._inside(rel)
            if not target.is_file():
                problems.append(f"{rel}: missing")
            elif sha256_file(target) != digest:
                problems.append(f"{rel}: sha256 mismatch (the file differs from the manifest)")
        if not problems:
            problems = self._unlisted()
        if problems:
            raise SuiteError("suite integrity check failed:\n  " + "\n  ".join(problems))

    def _unlisted(self) -> list[str]:
        listed = {self._inside(rel) for rel in self.manifest["files"]}
        problems, seen = [], set()
        for case in self.cases:
            dirs = [] if case.level == "schema" else [case.dir]
            for top in dirs + case.referenced_dirs():
                files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
                problems += [f"{p.relative_to(self.root)}: not listed in the manifest"
                             for p in files if p not in listed and p not in seen]
                seen.update(files)
            if case.level == "schema" and case.dir not in listed:
                problems.append(f"{case.path}: not listed in the manifest")
        return sorted(set(problems))

    @cached_property
    def cases(self) -> list[Case]:
        groups: dict[str, dict] = {}
        cases = []
        for entry in self.manifest["cases"]:
            needs = self.required["manifest-case"]
            if not isinstance(entry, dict) or not set(needs) <= entry.keys():
                raise SuiteError(f"manifest case entry {entry!r}: needs {', '.join(needs)}")
            if entry["level"] not in LEVELS:
                raise SuiteError(f"{entry['id']}: unknown level {entry['level']!r}")
            self._inside(entry["path"])
            loader = self._schema_doc if entry["level"] == "schema" else self._case_doc
            doc = loader(entry, groups)
            cases.append(Case(entry["id"], entry["level"], entry["path"], entry["since"], doc, self.root,
                              entry.get("algorithm")))
        ids = [c.id for c in cases]
        if len(set(ids)) != len(ids):
            raise SuiteError("manifest lists a case id twice")
        return cases

    def _schema_doc(self, entry: dict, groups: dict[str, dict]) -> dict:
        """{"group": the group without its tests, "test": the test} for the id "<group id>/<test id>"."""
        path = entry["path"]
        if path not in groups:
            groups[path] = {}
            doc = self._read_json(path)
            if not isinstance(doc, list):
                raise SuiteError(f"{path}: a schema group file is a JSON list of groups")
            for group in doc:
                _require(group, self.required["schema-group"], path)
                head = {k: v for k, v in group.items() if k != "tests"}
                for test in group["tests"]:
                    _require(test, self.required["schema-test"], f"{path}#{group['id']}")
                    groups[path][f"{group['id']}/{test['id']}"] = {"group": head, "test": test}
        if entry["id"] not in groups[path]:
            raise SuiteError(f"{entry['id']}: no such group and test in {path}")
        return groups[path][entry["id"]]

    def _case_doc(self, entry: dict, groups: dict[str, dict]) -> dict:
        doc = _require(self._read_json(f"{entry['path'].rstrip('/')}/case.json"), self.required[entry["level"]],
                       entry["id"])
        if doc["id"] != entry["id"]:
            raise SuiteError(f"{entry['path']}/case.json: id {doc['id']!r} differs from the manifest")
        return doc

    def _read_json(self, rel: str) -> object:
        try:
            return json.loads(self._inside(rel).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SuiteError(f"{rel}: cannot read ({e})") from e

    def get(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise SuiteError(f"no case with id {case_id!r}")

    def select(self, levels: list[str] | None, patterns: list[str] | None) -> list[Case]:
        """The cases of the given levels whose id equals, or fnmatch-matches, one of `patterns`."""
        def matches(case: Case, pattern: str) -> bool:
            return case.id == pattern or fnmatch.fnmatchcase(case.id, pattern)

        unmatched = [p for p in patterns or () if not any(matches(c, p) for c in self.cases)]
        if unmatched:
            raise SuiteError(f"no case matches {', '.join(unmatched)}")
        return [c for c in self.cases if (not levels or c.level in levels)
                and (not patterns or any(matches(c, p) for p in patterns))]
