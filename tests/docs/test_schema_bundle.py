"""The schemas bundle: every file of schemas/v1.0/ in one zip, schemas/schemas-v1.0.zip on the site.

docs/hooks/schemas.py builds it at docs build time; `bundle` is called here directly, without mkdocs, so
these tests run in the default suite. The last one reads the built site.
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from pathlib import Path

import pytest

from specfmt.schemas import VERSION

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas" / f"v{VERSION}"
_spec = importlib.util.spec_from_file_location("schemas_hook", ROOT / "docs" / "hooks" / "schemas.py")
hook = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hook)


def contents(data: bytes) -> dict[str, bytes]:
    """Each entry of a zip by name, in the archive's order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_bundle_holds_exactly_the_files_of_the_version_directory_with_their_bytes():
    files = {path.relative_to(SCHEMAS.parent).as_posix(): path.read_bytes()
             for path in SCHEMAS.rglob("*") if path.is_file()}

    entries = contents(hook.bundle(SCHEMAS))

    assert f"v{VERSION}/config.schema.json" in files and f"v{VERSION}/layouts/eagle3.json" in files
    assert list(entries) == sorted(files)
    assert entries == files


def test_the_same_files_written_in_another_order_at_another_time_give_the_same_bytes(tmp_path):
    documents = {"b.json": b'{"b": 1}\n', "a.json": b'{"a": 1}\n', "layouts/c.json": b"{}\n"}
    first, second = tmp_path / "one" / "v9.9", tmp_path / "two" / "v9.9"
    for directory, order in ((first, sorted(documents)), (second, sorted(documents, reverse=True))):
        for name in order:
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(documents[name])
    for path in second.rglob("*.json"):
        os.utime(path, (2_000_000_000, 2_000_000_000))

    assert hook.bundle(first) == hook.bundle(second)
    assert list(contents(hook.bundle(first))) == ["v9.9/a.json", "v9.9/b.json", "v9.9/layouts/c.json"]


def test_a_changed_or_added_file_changes_the_bundle(tmp_path):
    directory = tmp_path / "v9.9"
    directory.mkdir()
    (directory / "a.json").write_bytes(b"{}\n")
    before = hook.bundle(directory)
    (directory / "a.json").write_bytes(b"[]\n")
    changed = hook.bundle(directory)
    (directory / "b.json").write_bytes(b"{}\n")

    assert len({before, changed, hook.bundle(directory)}) == 3


def test_the_bundle_is_served_beside_the_version_directory():
    assert hook.bundle_uri(SCHEMAS) == f"schemas/schemas-v{VERSION}.zip"


@pytest.mark.docs
def test_the_site_serves_the_bundle_of_the_schemas_as_they_are(site):
    served = site / hook.bundle_uri(SCHEMAS)

    assert served.is_file(), f"no {hook.bundle_uri(SCHEMAS)} in the site"
    assert served.read_bytes() == hook.bundle(SCHEMAS)
