"""mkdocs hook: serve every JSON Schema at the path of its `$id`, and each version's schemas as one zip.

The schemas have one source, the repository's schemas/ and conformance/meta/ directories. This hook adds
their files to the build, and no copy is committed under docs/. With site_url https://specfmt.dev/, the
document whose `$id` is https://specfmt.dev/schemas/v1.0/config.schema.json lands at
site/schemas/v1.0/config.schema.json. A `$id` whose path differs from the served path fails the build.
Every file of schemas/v1.0/ is also served in site/schemas/schemas-v1.0.zip (`bundle`), the same bytes for
the same files. mkdocs is imported only by `on_files`, so the tests call `bundle` without it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mkdocs.structure.files import Files

SOURCES = ("schemas", "conformance/meta")  # repository directories served at the same path
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry: no build time leaks into the bytes


def bundle(directory: Path) -> bytes:
    """A zip of every file under `directory`, each named by its path from the directory's parent
    (`v1.0/layouts/eagle3.json`), in name order with a fixed time and mode: the same files give the same bytes."""
    files = sorted((path.relative_to(directory.parent).as_posix(), path)
                   for path in directory.rglob("*") if path.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o644 << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def bundle_uri(directory: Path) -> str:
    """Where the site serves the bundle of schemas/<directory>: schemas/schemas-v1.0.zip."""
    return f"schemas/schemas-{directory.name}.zip"


def on_files(files: Files, config) -> Files:
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    root = Path(config.config_file_path).resolve().parent
    # `mkdocs serve` replaces site_url with its own address, so compare paths under the site's root only.
    base = urlsplit(config.site_url or "/").path
    for source in SOURCES:
        for path in sorted((root / source).rglob("*.json")):
            uri = path.relative_to(root).as_posix()
            ident = json.loads(path.read_text(encoding="utf-8")).get("$id")
            if ident is not None and urlsplit(ident).path != base + uri:
                raise PluginError(f"{uri}: its $id {ident} is not the path the site serves it at ({base}{uri})")
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    for directory in sorted(path for path in (root / "schemas").iterdir() if path.is_dir()):
        files.append(File.generated(config, bundle_uri(directory), content=bundle(directory)))
    return files
