"""specfmt convert, upgrade and export: bringing drafts of other formats into v1, compat into strict, and v1 into
what an engine serves. Each prints every decision it makes; a value it cannot know is refused with the flag that
supplies it (exit 1), as is a result that would not validate strict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from specfmt.cli_common import UsageError, import_torch, local_dir

SHAPE_CODES = ("layout.shape", "layout.fc_width")  # findings of a tensor whose shape the config's facts contradict


def _verifier(args: argparse.Namespace):
    """--verifier's facts and --verifier-name; --verifier-name alone names a verifier whose facts the source holds."""
    from specfmt.convert.common import SourceError, VerifierFacts, verifier_facts

    if args.verifier is None:
        return VerifierFacts({}, args.verifier_name) if args.verifier_name else None
    try:
        return verifier_facts(args.verifier, args.verifier_name)
    except SourceError as e:
        raise UsageError(str(e)) from None


def _given(args: argparse.Namespace) -> dict:
    from specfmt.convert.common import parse_sets

    try:
        return parse_sets(args.set)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _report(decisions, out: Path, refused=None, invalid=None, verifier=None) -> int:
    for d in decisions:
        print(d.line())
    if refused is not None:
        for r in refused.refusals:
            print(r, file=sys.stderr)
        return 1
    if invalid is not None:
        for f in invalid.findings:
            print(f, file=sys.stderr)
        print(f"not written: the result would not validate strict ({len(invalid.findings)} "
              f"error{'s' * (len(invalid.findings) != 1)}){_shape_hint(invalid, verifier)}", file=sys.stderr)
        return 1
    print(f"wrote {out} (strict)")
    return 0


def _shape_hint(invalid, verifier) -> str:
    """Tensor shapes that disagree with a config bound to --verifier most often mean another verifier: say so."""
    if verifier is None or not verifier.config or not any(f.code in SHAPE_CODES for f in invalid.findings):
        return ""
    from specfmt.convert.common import FACTS

    facts = ", ".join(f"{k} {verifier.config[k]}" for k in FACTS)
    return f"; the tensor shapes disagree with --verifier's facts ({facts}): supply --verifier PATH of the " \
           "draft's own verifier"


def cmd_convert(args: argparse.Namespace) -> int:
    import_torch()
    from specfmt.convert import convert, write
    from specfmt.convert.common import Refused, SourceError
    from specfmt.findings import ValidationError

    source = local_dir(args.source)
    if not source.exists():
        raise UsageError(f"{args.source}: no such file or directory")
    if args.verifier is None:
        raise UsageError("--verifier is required: the draft's strict config names its verifier and its facts")
    verifier = _verifier(args)
    given = _given(args)
    try:
        conversion = convert(args.from_, source, verifier, given)
    except Refused as e:
        return _report([], args.out, refused=e)
    except SourceError as e:
        raise UsageError(str(e)) from None
    try:
        write(conversion, args.out, "specfmt convert", args.from_, args.source, args.argv, args.overwrite,
              inputs=[args.verifier] if args.verifier else [])
    except ValidationError as e:
        return _report(conversion.decisions, args.out, invalid=e, verifier=verifier)
    return _report(conversion.decisions, args.out)


def cmd_upgrade(args: argparse.Namespace) -> int:
    from specfmt.convert.common import Refused, SourceError
    from specfmt.convert.upgrade import upgrade
    from specfmt.findings import ValidationError

    source = local_dir(args.source)
    if not source.is_dir():
        raise UsageError(f"{args.source}: not a checkpoint directory")
    try:
        _, decisions = upgrade(source, args.out, _given(args), _verifier(args), args.argv, args.overwrite,
                               inputs=[args.verifier] if args.verifier else [])
    except Refused as e:
        return _report([], args.out, refused=e)
    except ValidationError as e:
        return _report([], args.out, invalid=e)
    except SourceError as e:
        raise UsageError(str(e)) from None
    return _report(decisions, args.out)


def cmd_export(args: argparse.Namespace) -> int:
    import_torch()
    from specfmt.convert.common import Refused, SourceError
    from specfmt.convert.export import export
    from specfmt.findings import ValidationError

    source = local_dir(args.source)
    if not source.is_dir():
        raise UsageError(f"{args.source}: not a checkpoint directory")
    try:
        done = export(source, args.engine, args.out, args.verifier, args.overwrite)
    except Refused as e:
        return _report([], args.out, refused=e)
    except ValidationError as e:
        for f in e.findings:
            print(f, file=sys.stderr)
        print(f"not exported: {args.source} is not a strict checkpoint (specfmt upgrade makes one)", file=sys.stderr)
        return 1
    except SourceError as e:
        raise UsageError(str(e)) from None
    for d in done.decisions:
        print(d.line())
    print(f"wrote {done.out} for {args.engine}; serve it with:\n{done.command}")
    return 0


def add_parsers(sub) -> None:
    from specfmt.convert import FORMATS
    from specfmt.convert.export import ENGINES

    sets = {"action": "append", "default": [], "metavar": "FIELD=VALUE",
            "help": "state a config value the source leaves open (FIELD a dotted path, VALUE JSON); a refusal names "
                    "the one it needs"}
    c = sub.add_parser("convert", help="a draft of another format as a strict v1 checkpoint")
    c.add_argument("source", help="the source: a directory (or one weights file), or a cached hub id")
    c.add_argument("--from", dest="from_", required=True, choices=sorted(FORMATS),
                   help="the source format: " + "; ".join(f"{k}: {v[1]}" for k, v in sorted(FORMATS.items())))
    c.add_argument("--verifier", help="the verifier: its directory, its config.json, or a cached hub id")
    c.add_argument("--verifier-name", help="the verifier's hub id ORG/NAME, written as name_or_path (strict "
                                           "needs one; a cached hub id gives it)")
    c.add_argument("--out", type=Path, required=True, help="the directory to write")
    c.add_argument("--set", **sets)
    c.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    c.set_defaults(func=cmd_convert)
    u = sub.add_parser("upgrade", help="a compat checkpoint as a strict one, every default explicit")
    u.add_argument("source", help="the compat checkpoint directory, or a cached hub id")
    u.add_argument("--out", type=Path, required=True, help="the directory to write")
    u.add_argument("--verifier", help="the verifier (directory, config.json or cached hub id), for the verifier "
                                      "facts a speculators checkpoint leaves out")
    u.add_argument("--verifier-name", help="the verifier's hub id ORG/NAME, when the checkpoint names none")
    u.add_argument("--set", **sets)
    u.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    u.set_defaults(func=cmd_upgrade)
    e = sub.add_parser("export", help="a strict checkpoint as an engine serves it, and the command that serves it")
    e.add_argument("source", help="the strict checkpoint directory, or a cached hub id")
    e.add_argument("--for", dest="engine", required=True, choices=sorted(ENGINES),
                   help="the engine: vllm (the checkpoint as it is; vLLM reads the format) or sglang (eagle3 only, "
                        "in the SafeAILab/SpecForge form; what SGLang would compute otherwise is refused)")
    e.add_argument("--out", type=Path, required=True, help="the directory to write")
    e.add_argument("--verifier", type=Path, help="the verifier's directory, for --for sglang when the draft stores "
                                                  "embed_tokens (SGLang uses the verifier's: they must be equal)")
    e.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    e.set_defaults(func=cmd_export)
