"""--validate-protocol: every request and answer checked against conformance/meta/protocol/.

Needs jsonschema (and its `referencing` companion); the rest of the runner does not.
"""

from __future__ import annotations

import json
from pathlib import Path

from specfmt_conformance.adapter import Checker

PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "meta" / "protocol"
COMMANDS = ("hello", "validate", "load", "run", "unload")


class CheckerUnavailable(Exception):
    """jsonschema or the protocol schemas are not available."""


def load_checker(suite_root: Path | None = None) -> Checker:
    """A function (cmd, direction, message) -> list of schema violations.

    The schemas come from the suite's meta/protocol/, else from the one beside this package.
    """
    directory = suite_root / "meta" / "protocol" if suite_root else PROTOCOL_DIR
    if not directory.is_dir():
        directory = PROTOCOL_DIR
    try:
        import jsonschema
        from referencing import Registry, Resource
    except ImportError as e:
        raise CheckerUnavailable("--validate-protocol needs the jsonschema package") from e
    paths = sorted(directory.glob("*.schema.json"))
    if not paths:
        raise CheckerUnavailable(f"no protocol schemas in {directory}")
    schemas = {p.name.removesuffix(".schema.json"): json.loads(p.read_text(encoding="utf-8")) for p in paths}
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values())
    validators = {name: jsonschema.Draft202012Validator(schema, registry=registry)
                  for name, schema in schemas.items()}

    def check(cmd: str, direction: str, message: dict) -> list[str]:
        validator = validators.get(f"{cmd}-{direction}")
        if validator is None:
            return [f"no schema for a {cmd} {direction}"]
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in validator.iter_errors(message)]

    return check
