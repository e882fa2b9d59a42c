"""Every schema's $id is a live address: the site serves the schema itself at that path.

The sources are schemas/**/*.json and conformance/meta/**/*.json; each document whose $id lies under
https://specfmt.dev/ must appear in site/ at the $id's path with the same JSON content.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE_URL = "https://specfmt.dev/"
SOURCES = sorted([*ROOT.glob("schemas/**/*.json"), *ROOT.glob("conformance/meta/**/*.json")])


def schema_ids(paths: list[Path]) -> dict[Path, str]:
    """The site-relative path of each $id under SITE_URL, by source file."""
    ids = {}
    for path in paths:
        document = json.loads(path.read_text(encoding="utf-8"))
        identifier = document.get("$id") if isinstance(document, dict) else None
        if isinstance(identifier, str) and identifier.startswith(SITE_URL):
            ids[path] = identifier.removeprefix(SITE_URL).split("#")[0]
    return ids


def unserved_ids(paths: list[Path], site: Path, root: Path) -> list[str]:
    """'source: $id (reason)' for each $id the site does not serve with the source's content."""
    problems = []
    for path, served in schema_ids(paths).items():
        source = path.relative_to(root).as_posix()
        target = site / served
        if not target.is_file():
            problems.append(f"{source}: {SITE_URL}{served} (no file site/{served})")
        elif json.loads(target.read_text(encoding="utf-8")) != json.loads(path.read_text(encoding="utf-8")):
            problems.append(f"{source}: {SITE_URL}{served} (site/{served} differs from the source)")
    return problems


def test_the_schema_sources_carry_specfmt_ids():
    ids = schema_ids(SOURCES)
    assert ROOT / "schemas/v1.0/config.strict.schema.json" in ids
    assert any(path.is_relative_to(ROOT / "conformance/meta") for path in ids)


@pytest.mark.docs
def test_every_schema_id_resolves_to_the_same_schema_in_the_site(site):
    problems = unserved_ids(SOURCES, site, ROOT)
    assert not problems, f"{len(problems)} schema $ids the site does not serve:\n" + "\n".join(problems)


def test_a_missing_or_different_schema_in_the_site_is_reported(tmp_path):
    root, site = tmp_path / "repo", tmp_path / "site"
    documents = {name: {"$id": f"{SITE_URL}schemas/v1.0/{name}", "type": "object"} for name in ("a.json", "b.json")}
    documents["c.json"] = {"$id": "https://example.org/c.json"}
    for name, document in documents.items():
        (root / "schemas").mkdir(parents=True, exist_ok=True)
        (root / "schemas" / name).write_text(json.dumps(document), encoding="utf-8")
    (site / "schemas/v1.0").mkdir(parents=True)
    (site / "schemas/v1.0/a.json").write_text(json.dumps({**documents["a.json"], "type": "array"}), encoding="utf-8")

    problems = unserved_ids(sorted((root / "schemas").glob("*.json")), site, root)

    assert problems == [
        f"schemas/a.json: {SITE_URL}schemas/v1.0/a.json (site/schemas/v1.0/a.json differs from the source)",
        f"schemas/b.json: {SITE_URL}schemas/v1.0/b.json (no file site/schemas/v1.0/b.json)",
    ]
