"""python -m conformance.generators [--check] [--root DIR]: write the cases of every level, the shared
fixtures and manifest.json, or check that the committed ones are what the generators produce."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.generators.check import check
from conformance.generators.common import SUITE
from conformance.generators.suite import write_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.generators", description=__doc__)
    parser.add_argument("--check", action="store_true", help="regenerate into a temporary directory and compare")
    parser.add_argument("--root", type=Path, default=SUITE, help="the suite directory (default: conformance/)")
    args = parser.parse_args(argv)
    version = (args.root / "SUITE_VERSION").read_text(encoding="utf-8").strip()
    if args.check:
        problems = check(args.root)
        for line in problems:
            print(line)
        print(f"conformance data: {'STALE' if problems else 'up to date'} ({args.root})")
        return 1 if problems else 0
    manifest = write_suite(args.root, version)
    levels = [c["level"] for c in manifest["cases"]]
    print(f"wrote {args.root}: {levels.count('schema')} schema tests, {levels.count('checkpoint')} checkpoint cases, "
          f"{levels.count('numerics')} numerics cases, "
          f"{len(manifest['files'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
