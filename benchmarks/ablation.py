"""Benchmark: the recipe ablation of issue 21 (item 3), one EAGLE-3 draft per row, same data, same budget.

Each row of ROWS is a name and the `specfmt train` flags it changes from the baseline. Every row trains on the same
--data caches (`specfmt datagen` outputs; --each-cache adds a row per cache trained on it alone: the data mix) for
the same number of optimizer steps (--steps, times the row's `budget`), with the same seed and --threads, then
`specfmt eval` measures the draft on each --prompts set (k 3, --max-new-tokens 128, bfloat16: the issue's acceptance
settings) in one process. The rows the trainer cannot express yet are in LEFT_OUT, with why; the table lists them as
not run.

Writes OUT/ablation.md (a markdown table: row, flags, steps, tau and acceptance by position per set, the change of
tau on the first set against the baseline, train seconds) and OUT/ablation.json (schema specfmt.bench.ablation/1),
both rewritten after each row. Each row keeps its work under OUT/rows/NAME (draft, training work, eval.json,
trained.json, row.json). Resumable: a finished row (its row.json made by the same train and eval commands) is not
rerun, a trained one (trained.json) is only evaluated, and a row killed while training resumes from its last
checkpoint (a row whose train command changed starts again). Train seconds are wall time on a machine others may load:
each row records the load average before and after it; compare rows measured under similar load.

Usage: python benchmarks/ablation.py --verifier DIR --data CACHE [--data CACHE ...] --steps 600 --out DIR
           [--prompts evalset:python-docs ...] [--limit 16] [--only NAME ...] [--each-cache]
           [--train-flags="--warmup 20 --precision bfloat16"]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import NamedTuple

from specfmt import evaluate
from specfmt.cli import main as specfmt
from specfmt.train.datagen import read_index

SCHEMA = "specfmt.bench.ablation/1"
EVAL_K, EVAL_DTYPE = 3, "bfloat16"  # issue 21's acceptance: k = 3, bfloat16 (and 128 new tokens, --max-new-tokens)
PROMPTS = ["evalset:python-docs", "evalset:humaneval", "evalset:chat"]


class Row(NamedTuple):
    flags: tuple[str, ...]  # `specfmt train` flags, after the harness's own: a row's value wins
    budget: int = 1  # optimizer steps: --steps times this
    data: tuple[str, ...] = ()  # the caches it trains on (default: every --data)


ROWS = {
    "baseline": Row(()),
    "norm-before-residual": Row(("--norm-before-residual",)),  # vLLM and speculators read it; SGLang has no flag
    "norm-before-fc": Row(("--norm-before-fc",)),
    "two-layers": Row(("--num-hidden-layers", "2")),
    "lr-3e-4": Row(("--lr", "3e-4")),
    "lr-3e-3": Row(("--lr", "3e-3")),
    "ttt-4": Row(("--k", "4")),
    "vocab-4096": Row(("--draft-vocab-size", "4096")),
    "vocab-16384": Row(("--draft-vocab-size", "16384")),
    "steps-x2": Row((), budget=2),
}

LEFT_OUT: dict[str, str] = {}  # rows the trainer cannot express yet, with why


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/ablation.py", description=__doc__.splitlines()[0])
    ap.add_argument("--verifier", required=True, help="the verifier's Hugging Face checkpoint directory")
    ap.add_argument("--data", action="append", required=True, help="a datagen cache; repeatable, all rows use all")
    ap.add_argument("--steps", type=int, required=True, help="optimizer steps of a row of budget 1")
    ap.add_argument("--out", required=True, help="directory of the table, the JSON and each row's work")
    ap.add_argument("--prompts", action="append", help=f"an eval prompt set; repeatable (default: {PROMPTS})")
    ap.add_argument("--limit", type=int, default=16, help="the first N prompts of each set (0: all)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="tokens generated per eval prompt")
    ap.add_argument("--batch", type=int, default=4, help="samples per optimizer step, every row")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of training and eval")
    ap.add_argument("--seed", type=int, default=0, help="specfmt train --seed, every row")
    ap.add_argument("--each-cache", action="store_true",
                    help="also a row per --data cache trained on it alone (only-NAME: the data mix)")
    ap.add_argument("--only", action="append", help="run this row only; repeatable (default: all)")
    ap.add_argument("--train-flags", default="", help="more `specfmt train` flags for every row, one string")
    args = ap.parse_args(argv)
    args.prompts = args.prompts or PROMPTS
    if args.steps < 1:
        ap.error(f"--steps: expected at least 1, found {args.steps}")
    try:
        args.samples = {cache: read_index(Path(cache))["samples"] for cache in args.data}
    except (OSError, ValueError) as e:
        ap.error(f"--data: expected datagen caches (specfmt datagen --out); {e}")
    return args


def flag_value(flags: list[str], name: str) -> str | None:
    """The value the last `name VALUE` in `flags` gives (argparse's rule: the last one wins), or None."""
    found = None
    for i, flag in enumerate(flags[:-1]):
        if flag == name:
            found = flags[i + 1]
    return found


def train_argv(args: argparse.Namespace, row: Row, where: Path) -> list[str]:
    """`specfmt train` for a row: --max-steps its budget, and enough --epochs over the caches to reach it."""
    steps = args.steps * row.budget
    flags = ["--batch", str(args.batch), "--seed", str(args.seed), *shlex.split(args.train_flags), *row.flags]
    caches = row.data or args.data
    per_epoch = sum(args.samples[cache] for cache in caches) // int(flag_value(flags, "--batch"))
    epochs = max(1, math.ceil(steps / per_epoch)) if per_epoch else 1
    data = [part for cache in caches for part in ("--data", cache)]
    return ["train", "eagle3", "--verifier", args.verifier, *data, "--out", str(where / "draft"),
            "--work", str(where / "work"), "--max-steps", str(steps), "--epochs", str(epochs), "--val-prompts", "0",
            "--threads", str(args.threads), *flags]


def eval_argv(args: argparse.Namespace, where: Path) -> list[str]:
    prompts = [part for spec in args.prompts for part in ("--prompts", spec)]
    limit = ["--limit", str(args.limit)] if args.limit else []
    return ["eval", "--verifier", args.verifier, "--draft", str(where / "draft"), *prompts, "--k", str(EVAL_K),
            "--max-new-tokens", str(args.max_new_tokens), "--dtype", EVAL_DTYPE, "--threads", str(args.threads),
            *limit, "--out", str(where / "eval.json")]


def write_text(path: Path, text: str) -> None:
    """`text` at `path`, whole or not at all (written beside it, then renamed)."""
    staging = path.with_name(path.name + ".partial")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def write_json(path: Path, document: dict) -> None:
    write_text(path, json.dumps(document, indent=1) + "\n")


def load_average() -> float | None:
    """The 1-minute load average to two decimals (specfmt.evaluate reads it), or None where the OS has none."""
    load = evaluate.load_average()
    return None if load is None else round(load, 2)


def per_set(args: argparse.Namespace, where: Path) -> dict[str, dict]:
    """Each eval set's tau, acceptance by position, speedup and prompt count, by its --prompts value."""
    document = json.loads((where / "eval.json").read_text(encoding="utf-8"))
    results = document["sets"] if "sets" in document else [document]
    return {spec: {key: r[key] for key in ("tau", "acceptance_by_position", "speedup", "prompts")}
            for spec, r in zip(args.prompts, results, strict=True)}


def train_row(where: Path, command: list[str]) -> tuple[int, float]:
    """Run `specfmt train` for a row unless trained.json says this command finished; (exit status, seconds). A
    run cut short keeps its seconds in started.json and resumes from its checkpoint; another command restarts."""
    trained, started = where / "trained.json", where / "started.json"
    if trained.is_file() and json.loads(trained.read_text(encoding="utf-8"))["command"] == command:
        return 0, json.loads(trained.read_text(encoding="utf-8"))["seconds"]
    before = json.loads(started.read_text(encoding="utf-8")) if started.is_file() else None
    spent = before["seconds"] if before and before["command"] == command else 0.0
    write_json(started, {"command": command, "seconds": spent})
    begun = time.perf_counter()
    status = specfmt(command + (["--restart"] if before and before["command"] != command else []))
    spent = round(spent + time.perf_counter() - begun, 1)
    write_json(trained if status == 0 else started, {"command": command, "seconds": spent})
    return status, spent


def run_row(args: argparse.Namespace, name: str, row: Row) -> dict:
    """Train and evaluate one row, or read it back when it is finished; a failed row says which command failed."""
    where = Path(args.out) / "rows" / name
    commands = {"train": train_argv(args, row, where), "eval": eval_argv(args, where)}
    done = where / "row.json"
    if done.is_file():
        record = json.loads(done.read_text(encoding="utf-8"))
        if record["commands"] == commands:
            return record
    where.mkdir(parents=True, exist_ok=True)
    record = {"row": name, "flags": list(row.flags), "budget": row.budget, "data": list(row.data),
              "steps": args.steps * row.budget, "commands": commands, "load_average": [load_average()]}
    status, record["train_seconds"] = train_row(where, commands["train"])
    if status != 0:
        return record | {"failed": f"specfmt train exited {status}", "status": status}
    status = specfmt(commands["eval"])
    if status != 0:
        return record | {"failed": f"specfmt eval exited {status}", "status": status}
    record["load_average"].append(load_average())
    record["sets"] = per_set(args, where)
    write_json(done, record)
    return record


def cells(record: dict, prompts: list[str], base: dict | None) -> list[str]:
    """A finished row's cells after its flags and steps: tau and acceptance per set, tau change, train seconds."""
    sets = [record["sets"][spec] for spec in prompts]
    change = f"{sets[0]['tau'] - base['sets'][prompts[0]]['tau']:+.2f}" if base and "sets" in base else ""
    return ([f"{s['tau']:.2f}" for s in sets] + [change]
            + [", ".join(f"{a:.2f}" for a in s["acceptance_by_position"]) for s in sets]
            + [f"{record['train_seconds']:.1f}"])


def describe(row: Row, quote: str = "") -> str:
    """What a row changes: its flags, its budget when it is not 1, its caches when not all; else "(baseline)"."""
    flags = [f"{quote}{shlex.join(row.flags)}{quote}"] if row.flags else []
    data = [f"data {', '.join(Path(cache).name for cache in row.data)} only"] if row.data else []
    return " ".join(flags + ([f"steps x{row.budget}"] if row.budget != 1 else []) + data) or "(baseline)"


def table(args: argparse.Namespace, records: list[dict]) -> str:
    """The markdown table of the rows run (finished or failed) and of the rows left out."""
    names = [spec.removeprefix("evalset:") if spec.startswith("evalset:") else Path(spec).stem for spec in args.prompts]
    head = (["row", "flags", "steps"] + [f"tau {n}" for n in names] + [f"Δ tau {names[0]}"]
            + [f"acceptance {n}" for n in names] + ["train s"])
    base = next((r for r in records if r["row"] == "baseline"), None)
    lines = [f"| {' | '.join(head)} |", f"|{'---|' * len(head)}"]
    for r in records:
        flags = describe(Row(tuple(r["flags"]), r["budget"], tuple(r["data"])), "`")
        rest = cells(r, args.prompts, base) if "sets" in r else [f"failed: {r['failed']}"]
        lines.append(f"| {' | '.join([r['row'], flags, str(r['steps']), *rest])} |")
    for name, why in LEFT_OUT.items():
        lines.append(f"| {name} |  |  | not run: {why} |")
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace, records: list[dict]) -> str:
    """Both result files, rewritten; returns the markdown."""
    setting = (f"EAGLE-3 on {', '.join(args.data)}; eval k = {EVAL_K}, {args.max_new_tokens} new tokens, {EVAL_DTYPE},"
               f" {args.threads} threads, {f'first {args.limit} prompts' if args.limit else 'all prompts'} per set")
    text = f"{setting}\n\n{table(args, records)}"
    out = Path(args.out)
    write_json(out / "ablation.json", {"schema": SCHEMA, "setting": setting, "rows": records,
                                       "left_out": LEFT_OUT})
    write_text(out / "ablation.md", text)
    return text


def rows(args: argparse.Namespace) -> dict[str, Row]:
    """ROWS, with a row per cache under --each-cache, narrowed to --only (a name that is no row: exit 2)."""
    every = dict(ROWS)
    if args.each_cache:
        every |= {f"only-{Path(cache).name}": Row((), data=(cache,)) for cache in args.data}
    unknown = [name for name in args.only or () if name not in every]
    if unknown:
        print(f"benchmarks/ablation.py: error: --only {unknown[0]}: no such row; expected one of {', '.join(every)}",
              file=sys.stderr)
        raise SystemExit(2)
    return {name: row for name, row in every.items() if not args.only or name in args.only}


def main(argv: list[str] | None = None) -> int:
    """Every row in turn (or --only), the results rewritten after each; 1 when a row failed, 130 on Ctrl-C."""
    args = parse_args(argv)
    chosen = rows(args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    records = []
    for name, row in chosen.items():
        print(f"ablation: row {name}: {describe(row)}", file=sys.stderr, flush=True)
        records.append(run_row(args, name, row))
        report(args, records)
        if records[-1].get("status") == 130:
            break
    print(report(args, records))
    failed = [r for r in records if "failed" in r]
    return 130 if failed and failed[-1]["status"] == 130 else 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("ablation: interrupted; the same command continues: finished rows are kept, a row in training resumes "
              "from its last checkpoint", file=sys.stderr)
        sys.exit(130)
