"""The specfmt command line: validate, inspect, schema.

Exit codes: 0 no error (warnings are printed), 1 at least one error, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys

from specfmt.findings import PROFILES, Report
from specfmt.schemas import load, schema_names, version_dir
from specfmt.validate import validate

SYMBOLS = ("H", "V", "V_d", "A", "L")


def _print_report(report: Report, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(report.to_json(), indent=2))
        return
    for f in report.findings:
        print(f)
    print(report.summary())


def cmd_validate(args: argparse.Namespace) -> int:
    report = validate(args.path, args.profile, scan_values=args.scan_values)
    _print_report(report, args.format)
    return 0 if report.ok else 1


def _shape(shape) -> str:
    return "-" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def cmd_inspect(args: argparse.Namespace) -> int:
    report = validate(args.path, args.profile)
    if args.format == "json":
        print(json.dumps({**report.to_json(), "symbols": report.symbols, "tensors": report.tensors}, indent=2))
        return 0 if report.ok else 1
    print(f"checkpoint: {report.path}")
    print(f"algorithm:  {report.algorithm or 'unknown'}")
    symbols = {k: report.symbols[k] for k in SYMBOLS if k in report.symbols}
    others = {k: v for k, v in report.symbols.items() if k not in SYMBOLS}
    print("symbols:    " + ", ".join(f"{k}={v}" for k, v in symbols.items()))
    if others:
        print("            " + ", ".join(f"{k}={v}" for k, v in others.items()))
    rows = [("tensor", "role", "class", "expected", "found", "status")]
    rows += [(r["name"], r["role"], r["dtype"], _shape(r["expected"]),
              f"{_shape(r['found'])} {r['found_dtype'] or ''}".strip(), r["status"]) for r in report.tensors]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print()
    _print_report(report, "text")
    return 0 if report.ok else 1


def cmd_schema(args: argparse.Namespace) -> int:
    names = schema_names()
    if args.name is None:
        for name in names:
            print(name)
        print(f"(in {version_dir()})", file=sys.stderr)
        return 0
    matches = [n for n in names if n == args.name or n.removesuffix(".json") == args.name
               or n.removesuffix(".json").split("/")[-1] == args.name]
    if len(matches) != 1:
        print(f"specfmt schema: no single schema named {args.name!r}; one of: {', '.join(names)}", file=sys.stderr)
        return 2
    if args.path:
        print(version_dir() / matches[0])
    else:
        print(json.dumps(load(matches[0]), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specfmt", description="The specfmt draft-checkpoint standard.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="validate a checkpoint directory")
    v.add_argument("path")
    v.add_argument("--profile", choices=PROFILES, default="compat")
    v.add_argument("--format", choices=("text", "json"), default="text")
    v.add_argument("--scan-values", action="store_true", help="also read tensor data: NaN/Inf, d2t/t2d values")
    v.set_defaults(func=cmd_validate)
    i = sub.add_parser("inspect", help="resolved algorithm, symbols and the tensor table")
    i.add_argument("path")
    i.add_argument("--profile", choices=PROFILES, default="compat")
    i.add_argument("--format", choices=("text", "json"), default="text")
    i.set_defaults(func=cmd_inspect)
    s = sub.add_parser("schema", help="print or locate a schema (no NAME: list them)")
    s.add_argument("name", nargs="?")
    s.add_argument("--path", action="store_true", help="print the file path instead of the content")
    s.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
