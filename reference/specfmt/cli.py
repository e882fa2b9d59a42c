"""The specfmt command line: validate, inspect, schema, generate, eval, datagen and train.

Exit codes: 0 no error (warnings are printed), 1 at least one error in a checkpoint (its findings are printed),
2 a usage error: a bad option, a path that does not exist or is not a directory, a hub id that is not in the
local cache, a draft given as the verifier or made for another verifier (specfmt.binding), or a package the
command needs that is not installed (the message names the extra to install: specfmt[runtime] for torch and
safetensors, specfmt[text] for tokenizers, specfmt[train] for datagen and train). Each usage error is one line
on stderr, never a traceback; with --traceback (before or after the command), the line is followed by the
error's full traceback, with the exception that caused it, for a bug report.

A directory argument that does not exist but reads as a hub id, ORG/NAME[@REVISION], is looked up in the local
Hugging Face cache (specfmt.hub); specfmt never downloads. validate, inspect and schema never import torch.
Output to a pipe that closes early (`specfmt schema eagle3 | head`) ends the command quietly with status 141,
as a Unix tool killed by SIGPIPE; Ctrl-C ends it with one line and status 130. Progress lines go to stderr,
and only when it is a terminal, except that eval, which runs for minutes, writes one line per prompt always (a log
of it says how far it came).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from specfmt import __version__
from specfmt.cli_common import (
    TRAIN_COMMANDS,
    Progress,
    UsageError,
    checkpoint_dir,
    import_torch,
    missing_extra,
    show_defaults,
)
from specfmt.cli_convert import add_parsers as add_convert_parsers
from specfmt.cli_runtime import add_parsers as add_runtime_parsers
from specfmt.findings import PROFILES, Report
from specfmt.publish import DiskFull, UnsafeOut
from specfmt.schemas import VERSION, load, schema_names, version_dir
from specfmt.train.commands import add_parsers as add_train_parsers
from specfmt.validate import validate

SYMBOLS = ("H", "V", "V_d", "A", "L")
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool that a closed pipe ended
INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a tool that Ctrl-C ended


def print_report(report: Report, fmt: str, quiet: bool = False) -> None:
    if fmt == "json":
        print(json.dumps(report.to_json(), indent=2))
        return
    for f in report.errors if quiet else report.findings:
        print(f)
    print(report.summary())


def containing_dirs(files: list[str]) -> list[str]:
    """The checkpoint directories that hold `files` (a pre-commit hook's changed files), each once, in order."""
    return list(dict.fromkeys(str(Path(f).parent) for f in files))


def cmd_validate(args: argparse.Namespace) -> int:
    given = containing_dirs(args.path) if args.containing else args.path
    paths = [checkpoint_dir(arg) for arg in given]  # every usage error before any work
    if args.scan_values:
        import_torch()
    bar = Progress(sys.stderr)
    reports = []
    for path in paths:
        reports.append(validate(path, args.profile, scan_values=args.scan_values, progress=bar.show))
        bar.clear()
        if args.format == "text":
            print_report(reports[-1], "text", args.quiet)
    if args.format == "json":
        docs = [r.to_json() for r in reports]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    return 0 if all(r.ok for r in reports) else 1


def _shape(shape) -> str:
    return "-" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def cmd_inspect(args: argparse.Namespace) -> int:
    report = validate(checkpoint_dir(args.path), args.profile)
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
    print_report(report, "text")
    return 0 if report.ok else 1


def short_name(name: str) -> str:
    """A schema document's name for `specfmt schema`: its file name without the directory, `.json` and `.schema`
    (config.strict.schema.json -> config.strict, layouts/eagle3.json -> eagle3)."""
    return name.rsplit("/", 1)[-1].removesuffix(".json").removesuffix(".schema")


def schema_named(name: str) -> str:
    """The document that `name` names: its short name, its file name with or without `.json`."""
    matches = [n for n in schema_names() if name in (n, n.removesuffix(".json"), short_name(n))]
    if len(matches) != 1:
        raise UsageError(f"no schema named {name!r}; expected one of {', '.join(map(short_name, schema_names()))}")
    return matches[0]


def cmd_schema(args: argparse.Namespace) -> int:
    if args.name is None:
        names = schema_names()
        width = max(len(short_name(n)) for n in names)
        for name in names:
            print(f"{short_name(name).ljust(width)}  {name}")
        print(f"(in {version_dir()})", file=sys.stderr)
        return 0
    name = schema_named(args.name)
    print(version_dir() / name if args.path else json.dumps(load(name), indent=2))
    return 0


PATH_HELP = "a checkpoint directory, or a hub id ORG/NAME[@REVISION] already in the local Hugging Face cache"


def add_check_parsers(sub) -> None:
    v = sub.add_parser("validate", help="validate checkpoint directories")
    v.add_argument("path", nargs="+", help=f"{PATH_HELP}; one report each")
    v.add_argument("--profile", choices=PROFILES, default="compat",
                   help="strict: what writers must emit; compat: also what published checkpoints hold, hazards "
                        "as warnings")
    v.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: one finding per line and a summary; json: the report (findings.schema.json), a "
                        "list of them for several paths")
    v.add_argument("--scan-values", action="store_true",
                   help="also read tensor data: NaN/Inf, d2t/t2d values (needs specfmt[runtime])")
    v.add_argument("-q", "--quiet", action="store_true", help="text format: errors and the summary line only, no "
                                                              "warnings")
    v.add_argument("--containing", action="store_true",
                   help="each PATH is a file of a checkpoint (its config.json, say): validate the directory that "
                        "holds it, once (the pre-commit hooks of .pre-commit-hooks.yaml pass changed files)")
    v.set_defaults(func=cmd_validate)
    i = sub.add_parser("inspect", help="resolved algorithm, symbols and the tensor table")
    i.add_argument("path", help=PATH_HELP)
    i.add_argument("--profile", choices=PROFILES, default="compat", help="the profile of the findings shown")
    i.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: the table and the findings; json: the report with symbols and tensor rows")
    i.set_defaults(func=cmd_inspect)
    s = sub.add_parser("schema", help="print or locate a schema (no NAME: list them)")
    s.add_argument("name", nargs="?", help="a short name from the list (config, config.strict, findings, eagle3, "
                                           "...) or a file name")
    s.add_argument("--path", action="store_true", help="print the file path instead of the content")
    s.set_defaults(func=cmd_schema)


def cmd_conformance_adapter(args: argparse.Namespace) -> int:
    import_torch()  # the runtime extra, checked before the protocol starts
    from specfmt.conformance_adapter import main as serve

    return serve()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specfmt", description="The specfmt draft-checkpoint standard.")
    parser.add_argument("--version", action="version", version=f"specfmt {__version__} (format {VERSION})",
                        help="print the package version and the format version it implements")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_check_parsers(sub)
    add_runtime_parsers(sub)  # generate and eval
    add_train_parsers(sub)  # datagen and train
    add_convert_parsers(sub)  # convert, upgrade, export
    a = sub.add_parser("conformance-adapter", help="the reference adapter: answer the conformance protocol "
                                                   "(conformance/PROTOCOL.md) on stdin and stdout (needs "
                                                   "specfmt[runtime])")
    a.set_defaults(func=cmd_conformance_adapter)
    parser.add_argument("--traceback", action="store_true", help=TRACEBACK_HELP)
    for command in sub.choices.values():
        command.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help=TRACEBACK_HELP)
        show_defaults(command)
    return parser


TRACEBACK_HELP = "after an error's one line, print its full traceback (for a bug report)"


def print_traceback(error: BaseException) -> None:
    """The traceback of `error` on stderr, with the exception it was raised from or during, which the one-line
    message hides (`raise UsageError(...) from None`)."""
    error.__suppress_context__ = False
    traceback.print_exception(error, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """A parsed command. datagen and train import torch first, so that its absence fails at once."""
    if args.command not in TRAIN_COMMANDS:
        return args.func(args)
    try:
        import_torch()
        return args.func(args)
    except (ValueError, OSError) as e:  # specfmt.text.TextError is a ValueError
        raise UsageError(str(e)) from None


def dispatch(argv: list[str] | None) -> int:
    """Parse and run; usage errors and missing extras become one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return run(args)
    except (UsageError, UnsafeOut, DiskFull) as e:  # specfmt.publish: an unsafe --out, a full disk
        print(f"specfmt {args.command}: {e}", file=sys.stderr)
        if args.traceback:
            print_traceback(e)
        return 2
    except ModuleNotFoundError as e:
        extra = missing_extra(args.command, e.name)
        if extra is None:
            raise
        print(f"specfmt {args.command}: needs the {e.name.partition('.')[0]} package, which is not installed: "
              f"pip install 'specfmt[{extra}]'", file=sys.stderr)
        if args.traceback:
            print_traceback(e)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C in a long generate or eval: one line, as a Unix tool stops
        print(f"specfmt {args.command}: interrupted", file=sys.stderr)
        if args.traceback:
            print_traceback(e)
        return INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """The specfmt command: its exit status (see the module docstring)."""
    try:
        try:
            return dispatch(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's own flush goes nowhere
        return BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
