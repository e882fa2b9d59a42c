"""`specfmt eval`: speed of speculative against plain greedy decoding on prompt files or evaluation sets
(`--prompts evalset:NAME`, specfmt.evalsets; several --prompts give a table per set and a summary row per set),
with the reference runtime, all sets in one process with the same threads and dtype: a chain of --k drafts, or the
tree --tree names (specfmt.cli_tree.TREE_GRAMMAR; acceptance by depth, no bound), or without either the tree of a
checkpoint whose default proposal method is one. One progress line per prompt
goes to stderr, always (an eval runs for minutes; a log of it should say how far it came), and a warning line
when the machine's load makes the timings unreliable (specfmt.evaluate.timing_warning). Usage errors and exit
statuses as specfmt.cli_runtime says.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from specfmt.cli_common import UsageError, import_torch
from specfmt.cli_runtime import (
    MODEL_DIRS,
    bound_draft,
    check_device,
    check_numbers,
    check_prompt,
    load_verifier,
    model_dirs,
    one_line,
)
from specfmt.cli_tree import TREE_GRAMMAR, shape_of_run, tree_option


def check_output(option: str, target: str | None) -> None:
    """A result file that can be written once the run is over: its directory exists and it is not a directory
    itself, checked before minutes of decoding rather than after."""
    if target is None:
        return
    path = Path(target)
    if path.is_dir():
        raise UsageError(f"{option} {target}: a directory; expected a file path")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {target}: no directory {path.parent} to write it in")


def check_record(record: dict, where: str) -> None:
    """A prompt record's fields of the right types: prompt_ids integers, prompt a string, messages a list of
    role/content strings (TextError otherwise)."""
    from specfmt.findings import render
    from specfmt.text import TextError

    ids = record.get("prompt_ids")
    if "prompt_ids" in record and not (isinstance(ids, list) and all(type(i) is int for i in ids)):
        raise TextError(f"{where}: prompt_ids: expected a list of integer token ids, found {render(ids)[:80]}")
    if "prompt_ids" not in record and "prompt" in record and not isinstance(record["prompt"], str):
        raise TextError(f"{where}: prompt: expected a string, found {render(record['prompt'])[:80]}")
    messages = record.get("messages")
    if "messages" in record and not (isinstance(messages, list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages)):
        raise TextError(f"{where}: messages: expected a list of {{\"role\": string, \"content\": string}}, found "
                        f"{render(messages)[:80]}")


def eval_records(spec: str, limit: int | None = None) -> list[dict]:
    """The first `limit` records of `spec`: an evaluation set, "evalset:NAME" (specfmt.evalsets), or a prompt file
    (JSON lines or text lines). Raises TextError, one line, for a missing file or set."""
    from specfmt import evalsets
    from specfmt.text import TextError, read_prompts

    name = evalsets.name_of(spec)
    if name is not None:
        try:
            return evalsets.records(name)[:limit]
        except (KeyError, ValueError, OSError, ImportError) as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            raise TextError(f"--prompts {spec}: {one_line(message)}") from None
    path = Path(spec)
    if not path.is_file():
        raise TextError(f"{path}: no such prompt file")
    try:
        return read_prompts(path)[:limit]
    except UnicodeDecodeError as e:
        raise TextError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); prompts are UTF-8 JSON lines or "
                        "text lines") from None


def eval_prompts(verifier_dir: str, spec: str, limit: int | None = None) -> tuple[list[list[int]], list[int]]:
    """Token ids of the first `limit` records of a prompt file or evaluation set (eval_records), and the
    verifier's end-of-sequence ids with the tokenizer's eos_token first (decoding stops on the first). Raises
    ValueError for a usage mistake."""
    from specfmt.evalsets import name_of
    from specfmt.text import Text, TextError, _ids, _read_json

    records = eval_records(spec, limit)
    if not records:
        raise TextError(f"{spec}: no prompt in the {'file' if name_of(spec) is None else 'set'}")
    for n, record in enumerate(records, 1):
        check_record(record, f"{spec}: prompt {n}")
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
            eos |= _ids(_read_json(Path(verifier_dir) / name).get("eos_token_id"))  # specfmt.files; {} when absent
        return prompts, sorted(eos)
    return prompts, text.stop_ids()


def prompt_sets(verifier_dir: str, specs: list[str], limit: int | None) -> tuple[dict[str, list[list[int]]], list[int]]:
    """Each --prompts value's token ids (eval_prompts), by the value; a value given twice is a UsageError."""
    repeated = sorted({s for s in specs if specs.count(s) > 1})
    if repeated:
        raise UsageError(f"--prompts {repeated[0]}: given twice; expected each prompt set once")
    sets, eos_ids = {}, []
    for spec in specs:
        try:
            sets[spec], eos_ids = eval_prompts(verifier_dir, spec, limit)
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(one_line(e)) from e
    return sets, eos_ids


def write_result(args: argparse.Namespace, results: list[dict]) -> None:
    """--out (one set: its result; several: specfmt.eval.sets/1), --plot, then the tables or JSON on stdout."""
    from specfmt.eval_report import format_sets, plot
    from specfmt.evaluate import SETS_SCHEMA

    document = results[0] if len(results) == 1 else {"schema": SETS_SCHEMA, "sets": results}
    if args.out:
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        plot(results, args.plot)
    print(json.dumps(document, indent=2) if args.format == "json" else format_sets(results))


def cmd_eval(args: argparse.Namespace) -> int:
    import importlib.util

    check_numbers(args)
    shape = tree_option(args)
    verifier_dir, draft_dir = model_dirs(args.verifier, args.draft)
    for option, target in (("--out", args.out), ("--plot", args.plot)):
        check_output(option, target)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib, which is not installed: pip install 'specfmt[plots]'")
    check_device(args.device, import_torch())
    from specfmt.evaluate import evaluate_sets, set_threads
    from specfmt.findings import ValidationError

    sets, eos_ids = prompt_sets(str(verifier_dir), args.prompts, args.limit)
    set_threads(args.threads)
    verifier = load_verifier(verifier_dir, args.device, args.dtype)
    for spec, prompts in sets.items():
        for prompt in prompts:
            check_prompt(prompt, verifier.vocab_size, spec)
    try:
        draft, config = bound_draft(draft_dir, verifier_dir, verifier, args)
        shape = shape_of_run(config, draft, args, shape)
        results = evaluate_sets(verifier, draft, sets, args.k or DEFAULT_K, args.max_new_tokens, eos_ids, shape=shape,
                                progress=lambda line: print(f"eval: {line}", file=sys.stderr, flush=True))
    except ValidationError as e:
        for f in e.findings:
            print(f)
        return 1
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(one_line(e)) from e
    if results[-1]["timing_warning"]:
        print(f"eval: {results[-1]['timing_warning']}", file=sys.stderr)
    write_result(args, results)
    return 0


DEFAULT_K = 3  # the chain's drafts per step when neither --k nor --tree is given


def add_parser(sub) -> None:
    e = sub.add_parser("eval", help="speed of speculative against plain greedy decoding on prompt files or "
                                    "evaluation sets (a progress line per prompt on stderr)")
    e.add_argument("--verifier", required=True, help=f"the Hugging Face model the draft is for: {MODEL_DIRS}")
    e.add_argument("--draft", required=True, help=f"the specfmt draft checkpoint: {MODEL_DIRS}")
    e.add_argument("--prompts", required=True, action="append",
                   help="a file of JSON lines of {prompt|messages|prompt_ids}, or text lines; or evalset:NAME, an "
                        "evaluation set (python-docs, humaneval, chat); repeat it for a table per set and a "
                        "summary")
    e.add_argument("--k", type=int, help=f"draft tokens per step of the chain (default: {DEFAULT_K})")
    e.add_argument("--tree", help="measure a tree (spec/trees.md) instead of a chain, greedy, side by side with plain "
                   "decoding, no bound printed (specfmt.evaluate); without --k or --tree, a checkpoint whose default "
                   f"proposal method is a static_tree or dynamic_tree is measured with its tree: {TREE_GRAMMAR}")
    e.add_argument("--max-new-tokens", type=int, default=128, help="tokens to generate per prompt")
    e.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where verifier and draft run")
    e.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="of the verifier and draft")
    e.add_argument("--threads", type=int, help="torch threads (default: the CPUs this process may use)")
    e.add_argument("--limit", type=int, help="the first N prompts of each set only (default: all)")
    e.add_argument("--out", help="write the result JSON here (with several --prompts, "
                   "{\"schema\": \"specfmt.eval.sets/1\", \"sets\": [result, ...]})")
    e.add_argument("--plot", help="write a PNG of acceptance by position, a group of bars per set, here "
                   "(needs specfmt[plots])")
    e.add_argument("--format", choices=("text", "json"), default="text", help="of the result on stdout")
    e.set_defaults(func=cmd_eval)
