"""mkdocs hook: serve every JSON Schema at the path of its `$id`.

The schemas have one source, the repository's schemas/ and conformance/meta/ directories. This hook adds
their files to the build, and no copy is committed under docs/. With site_url https://specfmt.dev/, the
document whose `$id` is https://specfmt.dev/schemas/v1.0/config.schema.json lands at
site/schemas/v1.0/config.schema.json. A `$id` whose path differs from the served path fails the build.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

SOURCES = ("schemas", "conformance/meta")  # repository directories served at the same path


def on_files(files: Files, config) -> Files:
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
    return files
