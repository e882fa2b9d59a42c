"""The specfmt command line: validate, inspect, schema, generate, eval.

Exit codes: 0 no error (warnings are printed), 1 at least one error, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from specfmt.findings import PROFILES, Report
from specfmt.schemas import load, schema_names, version_dir
from specfmt.train.commands import add_parsers as add_train_parsers
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


def _tokenizer(verifier_dir: str):
    """The verifier's tokenizer.json through the optional `tokenizers` package, or None."""
    path = Path(verifier_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    return Tokenizer.from_file(str(path))


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from specfmt.findings import ValidationError
    from specfmt.generate import generate
    from specfmt.runtime import default_proposal, load_draft, pick_dtype
    from specfmt.verifier import Verifier

    if args.device == "cuda" and not torch.cuda.is_available():
        print("specfmt generate: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    tokenizer = _tokenizer(args.verifier)
    if args.prompt is not None and tokenizer is None:
        print("specfmt generate: --prompt needs tokenizer.json in the verifier directory and the `tokenizers` "
              "package (pip install specfmt[text]); use --prompt-ids", file=sys.stderr)
        return 2
    prompt = tokenizer.encode(args.prompt).ids if args.prompt is not None else args.prompt_ids
    verifier = Verifier.from_pretrained(args.verifier, args.device, pick_dtype(args.dtype))
    try:
        draft, config = load_draft(args.draft, verifier)
    except ValidationError as e:
        for f in e.findings:
            print(f)
        return 1
    proposal = default_proposal(config)
    if args.proposal is not None:
        proposal.kind = args.proposal
    if proposal.kind == "sampling":
        proposal.temperature = args.temperature
    if args.k is not None:
        proposal.speculative_tokens = args.k
    result = generate(verifier, draft, prompt, args.max_new_tokens, proposal, args.seed)
    text = tokenizer.decode(result.tokens) if tokenizer is not None else None
    stats = result.stats.to_json()
    if args.format == "json":
        print(json.dumps({"prompt_ids": prompt, "tokens": result.tokens, "text": text, "proposal": proposal.kind,
                          "lossy": proposal.kind == "greedy" and proposal.verifier_accept_k > 1, "stats": stats}))
        return 0
    print(text if text is not None else " ".join(map(str, result.tokens)))
    print(f"--\nsteps {stats['steps']}, k {stats['k']}, tau {stats['tau']:.3f}, "
          f"acceptance by position {[round(a, 3) for a in stats['acceptance_by_position']]}")
    if proposal.kind == "greedy" and proposal.verifier_accept_k > 1:
        print("note: verifier_accept_k > 1 is lossy (spec/verification.md#VRF-4)")
    return 0


def eval_prompts(verifier_dir: str, prompts_file: str, limit: int | None = None) -> tuple[list[list[int]], list[int]]:
    """Token ids of the first `limit` records of a prompt file, and the verifier's end-of-sequence ids with
    the tokenizer's eos_token first (decoding stops on the first). Raises ValueError for a usage mistake."""
    from specfmt.text import Text, TextError, _ids, read_prompts

    path = Path(prompts_file)
    if not path.is_file():
        raise TextError(f"{path}: no such prompt file")
    records = read_prompts(path)[:limit]
    if not records:
        raise TextError(f"{path}: no prompt in the file")
    try:
        text = Text.from_verifier(verifier_dir)
    except TextError:
        if any("prompt_ids" not in r for r in records):
            raise
        text = None
    prompts = [text.prompt_ids(r) if text else [int(i) for i in r["prompt_ids"]] for r in records]
    if text is None:
        eos = set()
        for name in ("generation_config.json", "config.json"):
            if (Path(verifier_dir) / name).is_file():
                eos |= _ids(json.loads((Path(verifier_dir) / name).read_text(encoding="utf-8")).get("eos_token_id"))
        return prompts, sorted(eos)
    return prompts, text.stop_ids()


def _eval_usage(args: argparse.Namespace) -> str | None:
    """The first usage mistake in the directories and options of `specfmt eval`, or None."""
    import importlib.util

    if not (Path(args.verifier) / "config.json").is_file():
        return f"{args.verifier}: not a verifier directory (no config.json)"
    if not Path(args.draft).is_dir():
        return f"{args.draft}: no such draft directory"
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib (pip install specfmt[plots])"
    if min(args.k, args.max_new_tokens, args.limit or 1, args.threads or 1) < 1:
        return "--k, --max-new-tokens, --limit and --threads are at least 1"
    return None


def cmd_eval(args: argparse.Namespace) -> int:
    from specfmt.evaluate import evaluate, format_text, plot, set_threads
    from specfmt.findings import ValidationError
    from specfmt.runtime import load_draft, pick_dtype
    from specfmt.verifier import Verifier

    problem = _eval_usage(args)
    if problem is None:
        try:
            prompts, eos_ids = eval_prompts(args.verifier, args.prompts, args.limit)
        except (ValueError, TypeError, KeyError) as e:
            problem = str(e)
    if problem is not None:
        print(f"specfmt eval: {problem}", file=sys.stderr)
        return 2
    set_threads(args.threads)
    try:
        verifier = Verifier.from_pretrained(args.verifier, "cpu", pick_dtype(args.dtype))
        if any(not p or min(p) < 0 or max(p) >= verifier.vocab_size for p in prompts):
            raise ValueError(f"{args.prompts}: a prompt is empty or has an id outside [0, {verifier.vocab_size})")
        draft, _ = load_draft(args.draft, verifier)
        result = evaluate(verifier, draft, prompts, args.k, args.max_new_tokens, eos_ids)
    except ValidationError as e:
        for f in e.findings:
            print(f)
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"specfmt eval: {e}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        plot(result, args.plot)
    print(json.dumps(result, indent=2) if args.format == "json" else format_text(result))
    return 0


def add_eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="speed of speculative against plain greedy decoding on a prompt file")
    e.add_argument("--verifier", required=True, help="Hugging Face checkpoint directory of the verifier")
    e.add_argument("--draft", required=True, help="specfmt checkpoint directory of the draft")
    e.add_argument("--prompts", required=True, help="JSON lines of {prompt|messages|prompt_ids}, or text lines")
    e.add_argument("--k", type=int, default=3, help="draft tokens per step")
    e.add_argument("--max-new-tokens", type=int, default=128)
    e.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    e.add_argument("--threads", type=int, help="torch threads (default: the CPUs this process may use)")
    e.add_argument("--limit", type=int, help="the first N prompts only")
    e.add_argument("--out", help="write the result JSON here")
    e.add_argument("--plot", help="write a PNG of acceptance by position here")
    e.add_argument("--format", choices=("text", "json"), default="text")
    e.set_defaults(func=cmd_eval)


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
    g = sub.add_parser("generate", help="speculative decoding with the reference runtime")
    g.add_argument("--verifier", required=True, help="Hugging Face checkpoint directory of the verifier")
    g.add_argument("--draft", required=True, help="specfmt checkpoint directory of the draft")
    prompt = g.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="text, encoded with the verifier's tokenizer.json")
    prompt.add_argument("--prompt-ids", type=int, nargs="+", help="token ids")
    g.add_argument("--proposal", choices=("greedy", "sampling"), help="default: the checkpoint's default method")
    g.add_argument("--k", type=int, help="draft tokens per step (default: the method's speculative_tokens)")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling only")
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    g.add_argument("--dtype", choices=("float32", "float64", "bfloat16", "float16"), default="float32")
    g.add_argument("--format", choices=("text", "json"), default="text")
    g.set_defaults(func=cmd_generate)
    add_eval_parser(sub)
    add_train_parsers(sub)  # datagen and train
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if args.command in ("train", "datagen"):
        from specfmt.text import TextError

        try:
            return args.func(args)
        except (ValueError, TextError, OSError) as e:
            print(f"specfmt {args.command}: {e}", file=sys.stderr)
            return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
