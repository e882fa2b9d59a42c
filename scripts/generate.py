"""Regenerate every derived file from schemas/, or with --check fail when one is stale.

Derived files: schemas/v1.0/config.strict.schema.json (gen_strict), reference/specfmt/models.py
(gen_models), the generated blocks in spec/*.md (gen_spec), the generated pages and snippets of the docs site
(gen_docs) and the generated blocks of README.md (gen_docs_install: the extras table). It also fails, with or
without --check, when the rule coverage map is incomplete (gen_coverage.problems).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_coverage  # noqa: E402
import gen_docs  # noqa: E402
import gen_docs_install  # noqa: E402
import gen_models  # noqa: E402
import gen_spec  # noqa: E402
import gen_strict  # noqa: E402
from specfmt.schemas import VERSION  # noqa: E402

SCHEMAS = ROOT / "schemas" / f"v{VERSION}"


def outputs() -> dict[Path, str]:
    compat = json.loads((SCHEMAS / "config.schema.json").read_text(encoding="utf-8"))
    strict = gen_strict.strict_schema(compat)
    files = {SCHEMAS / "config.strict.schema.json": json.dumps(strict, indent=2) + "\n"}
    files[ROOT / "reference" / "specfmt" / "models.py"] = gen_models.generate(compat, strict)
    files.update(gen_spec.generate(ROOT))
    files.update(gen_docs.generate(ROOT))
    files.update(gen_docs_install.readme(ROOT))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a generated file is stale")
    args = parser.parse_args()
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale.append(path)
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "regenerated", lineterm="")
            print("\n".join(list(diff)[:40]))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    gaps = gen_coverage.problems(ROOT)
    for line in gaps + [f"note: {gen_coverage.REASONS} lists {i} as pending, and it has cases now: remove it"
                        for i in gen_coverage.stale_pending(ROOT)]:
        print(line)
    if stale:
        print(f"stale generated files (run make generate): {[str(p.relative_to(ROOT)) for p in stale]}")
    if gaps:
        print(f"rule coverage incomplete ({len(gaps)} problems): see docs/conformance/coverage.md")
    return 1 if stale or gaps else 0


if __name__ == "__main__":
    sys.exit(main())
