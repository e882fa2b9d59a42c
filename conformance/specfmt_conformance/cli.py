"""specfmt-conformance: run the suite against an adapter, list the cases, show one case.

Exit codes: 0 when no case failed, errored, crashed or passed unexpectedly; 1 otherwise;
2 on a usage error, a suite that fails its integrity check, or an adapter that fails the handshake;
130 when interrupted (Ctrl-C), after the adapter is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from importlib import metadata
from pathlib import Path

from specfmt_conformance import LEVELS, PROTOCOL_VERSION, RUNNER_VERSION
from specfmt_conformance.adapter import AdapterCrash, AdapterTimeout, ProtocolError
from specfmt_conformance.expectations import ExpectationsError, load_expectations
from specfmt_conformance.protocol import CheckerUnavailable, load_checker
from specfmt_conformance.report import build_report, console_lines, failed, now, write_reports
from specfmt_conformance.runner import Result, run_cases
from specfmt_conformance.session import Session
from specfmt_conformance.suite import DEFAULT_ROOT, Suite, SuiteError


def _progress(done: int, total: int, result: Result) -> None:
    """A one-line bar on stderr; called only when stderr is a terminal."""
    width = 30
    filled = width * done // total
    line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {result.status:<14} {result.id[:50]:<50}"
    sys.stderr.write(line + ("\n" if done == total else ""))
    sys.stderr.flush()


STDERR_LINES, STDERR_WIDTH = 20, 300  # what a failed handshake shows of the adapter's stderr


def stderr_tail(text: str) -> list[str]:
    """The last STDERR_LINES non-blank lines of an adapter's stderr, each cut at STDERR_WIDTH characters: where a
    traceback ends, the error that stopped the adapter."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()][-STDERR_LINES:]
    return [line if len(line) <= STDERR_WIDTH else line[:STDERR_WIDTH] + " ..." for line in lines]


def version() -> str:
    """The package version (the suite's own, SUITE_VERSION) and what this runner reads: the default suite's
    version and format, the runner and the protocol."""
    try:
        package = metadata.version("specfmt-conformance")
    except metadata.PackageNotFoundError:
        package = "(not installed)"
    try:
        suite = Suite(DEFAULT_ROOT)
        bundled = f"suite {suite.suite_version} (format {suite.format_version})"
    except SuiteError:
        bundled = "no readable suite"
    return f"specfmt-conformance {package}: {bundled}, runner {RUNNER_VERSION}, protocol {PROTOCOL_VERSION}"


class _Version(argparse.Action):
    """--version, computed when asked (it reads the suite's manifest)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version())
        parser.exit()


def _prepare(args: argparse.Namespace) -> tuple[Suite, list, Session]:
    suite = Suite(args.suite)
    suite.verify()
    entries = load_expectations(args.expectations, suite.cases)
    try:
        command = shlex.split(args.adapter)
    except ValueError as e:
        raise SuiteError(f"--adapter: {e}") from e
    if not command:
        raise SuiteError("--adapter is empty")
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise SuiteError(f"--report {args.report}: not a directory; the reports are written into one")
    checker = load_checker(suite.root) if args.validate_protocol else None
    return suite, entries, Session(command, args.timeout, suite.suite_version, checker)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        suite, entries, session = _prepare(args)
        cases = suite.select(args.level, args.case)
    except (SuiteError, ExpectationsError, CheckerUnavailable) as e:
        print(f"specfmt-conformance: {e}", file=sys.stderr)
        return 2
    started = now()
    try:
        hello = session.open()
    except (AdapterCrash, AdapterTimeout, ProtocolError) as e:
        print(f"specfmt-conformance: the adapter failed the handshake: {e}", file=sys.stderr)
        tail = stderr_tail(session.take_stderr())
        if tail:
            print(f"the adapter's stderr (last {len(tail)} lines):", *tail, sep="\n  ", file=sys.stderr)
        return 2
    try:
        results = run_cases(session, cases, entries, _progress if sys.stderr.isatty() else None)
    except KeyboardInterrupt:  # Ctrl-C: the adapter may be busy with a case; it would not read a stop
        if session.adapter is not None:
            session.adapter.kill()
        raise
    finally:
        session.close()
    run = {"started": started, "finished": now(), "adapter": args.adapter, "restarts": session.restarts,
           "selection": {"levels": args.level or [], "cases": args.case or []},
           "expectations": {"file": str(args.expectations) if args.expectations else None, "entries": len(entries)}}
    report = build_report(suite, hello, run, results)
    if args.report:
        try:
            write_reports(Path(args.report), report)
        except OSError as e:
            print(f"specfmt-conformance: --report {args.report}: cannot write the reports ({e})", file=sys.stderr)
            return 2
    print("\n".join(console_lines(report)))
    return 1 if failed(report) else 0


def cmd_list(args: argparse.Namespace) -> int:
    try:
        cases = Suite(args.suite).select(args.level, None)
    except SuiteError as e:
        print(f"specfmt-conformance: {e}", file=sys.stderr)
        return 2
    for case in cases:
        print(f"{case.id}\t{case.level}\t{case.since}\t{case.path}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        suite = Suite(args.suite)
        case = suite.get(args.id)
        dirs = case.referenced_dirs()
    except SuiteError as e:
        print(f"specfmt-conformance: {e}", file=sys.stderr)
        return 2
    tops = [suite.root / case.path] + dirs
    files = {rel: digest for rel, digest in sorted(suite.manifest["files"].items())
             if any((suite.root / rel).resolve() == top or (suite.root / rel).resolve().is_relative_to(top)
                    for top in tops)}
    print(json.dumps({"id": case.id, "level": case.level, "path": case.path, "since": case.since,
                      "case": case.doc, "files": files}, indent=2))
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="specfmt-conformance", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_Version, help="print the package, suite, runner and protocol versions")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--suite", type=Path, default=DEFAULT_ROOT, help="suite root holding manifest.json")
    run = sub.add_parser("run", parents=[common], help="certify an implementation through its adapter")
    run.add_argument("--adapter", required=True, help="the adapter's command line (split like a shell)")
    run.add_argument("--level", action="append", choices=LEVELS, help="run only this level (repeatable)")
    run.add_argument("--case", action="append", help="run only this case id or fnmatch pattern (repeatable)")
    run.add_argument("--expectations", type=Path, help="the implementation's skip/xfail file")
    run.add_argument("--report", type=Path, help="write report.json, report.md and junit.xml here")
    run.add_argument("--timeout", type=_seconds, default=30.0, help="seconds per command (default 30)")
    run.add_argument("--validate-protocol", action="store_true",
                     help="check every message against meta/protocol (needs jsonschema)")
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", parents=[common], help="list the cases")
    lst.add_argument("--level", action="append", choices=LEVELS, help="only this level (repeatable)")
    lst.set_defaults(func=cmd_list)
    show = sub.add_parser("show", parents=[common], help="print one case and its files")
    show.add_argument("id")
    show.set_defaults(func=cmd_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `specfmt-conformance list | head`: stop quietly, as a pipe reader expects
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # Ctrl-C: cmd_run has killed the adapter; no report is written
        print("specfmt-conformance: interrupted; no report written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
