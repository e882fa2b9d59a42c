"""The `specfmt datagen` and `specfmt train` subcommands: argument parsing, progress on the terminal, and the
one-line errors of the CLI boundary. The work itself is in specfmt.train.datagen and specfmt.train.loop."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from specfmt.train import options
from specfmt.train.options import DataOptions, ExportOptions, RunOptions, TrainOptions
from specfmt.train.recipes import DEFAULT, RECIPES, warm_start

DATAGEN_OPTIONS = (DataOptions, RunOptions)  # the option classes whose flags datagen has, in --help order


def train_options() -> list[tuple[type, str]]:
    """(option class, help prefix) of train's flags after the data options, in --help order: each registered
    recipe's own options among them, their help starting with the algorithm."""
    return [(TrainOptions, ""), *((r.options, f"{name}: ") for name, r in RECIPES.items() if r.options),
            (ExportOptions, "")]


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verifier", required=True, help="Hugging Face checkpoint directory of the verifier")
    for cls in DATAGEN_OPTIONS:
        options.add_flags(p, cls)


def add_parsers(sub) -> None:
    d = sub.add_parser("datagen", help="documents and the verifier's hidden states, cached for training")
    add_data_options(d)
    d.add_argument("--out", required=True, help="cache directory to write (an existing datagen cache is rewritten)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing --out that is not a datagen cache")
    d.add_argument("--algorithm", choices=tuple(RECIPES), default=DEFAULT,
                   help="the draft the features are for: which aux states to keep (default: %(default)s)")
    d.set_defaults(func=cmd_datagen)
    t = sub.add_parser("train", help="train a draft for a frozen verifier; writes a strict checkpoint")
    t.add_argument("algorithm", choices=tuple(RECIPES), help="the kind of draft to train")
    add_data_options(t)
    t.add_argument("--out", required=True, help="directory of the trained draft (a strict checkpoint; one that "
                                                "specfmt train wrote is replaced)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out checkpoint that specfmt train "
                                                            "did not write")
    t.add_argument("--work", help="checkpoints, log and data cache (default: OUT.work)")
    for cls, prefix in train_options():
        options.add_flags(t, cls, prefix)
    t.add_argument("--restart", action="store_true", help="discard the checkpoint in the work directory")
    t.set_defaults(func=cmd_train)


def set_threads(n: int) -> int:
    """--threads: n, or 0 for every core this process may use."""
    from specfmt.evaluate import set_threads as set_torch_threads

    return set_torch_threads(n or None)


def rank() -> int:
    """This process's rank under torchrun (RANK, else LOCAL_RANK); 0 without torchrun. Only rank 0 prints."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)


def report(line: str) -> None:
    """A progress line: rewritten in place on a terminal, one line each otherwise; printed by rank 0 only."""
    if rank() != 0:
        return
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def end_line() -> None:
    """Ends a progress line rewritten in place (on a terminal; elsewhere each line is already whole)."""
    if sys.stderr.isatty() and rank() == 0:
        print(file=sys.stderr)


def aux_ids_for(algorithm: str, num_layers: int) -> tuple[int, ...]:
    """The verifier states the draft reads, as its recipe says (none for heads on the last state)."""
    return RECIPES[algorithm].aux_ids(num_layers)


def read_by(args: argparse.Namespace) -> list[str]:
    """What datagen and train read besides the verifier: the data specs and the caches --exclude names."""
    return [*args.data, *args.exclude]


def recorded(cache_options: dict) -> dict:
    """A cache's options with the default of each DataOptions field added since it was made."""
    return asdict(DataOptions(specs=[])) | cache_options


def build_cache(args, verifier_dir: Path, target: Path, aux_ids: tuple[int, ...], protect: list[Path]):
    """The cache of args.data at `target`: reused when it exists for the same options, else written."""
    import torch

    from specfmt.text import Text
    from specfmt.train.datagen import Cache, is_cache, write_cache
    from specfmt.verifier import Verifier

    opts = options.from_args(DataOptions, args)
    if is_cache(target, current=True):
        cache = Cache(target)
        if recorded(cache.index["options"]) == asdict(opts) and tuple(cache.index["aux_ids"]) == aux_ids:
            return cache
    verifier = Verifier.from_pretrained(verifier_dir, dtype=getattr(torch, args.gen_dtype))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_cache(target, verifier, Text.from_verifier(verifier_dir), aux_ids, opts, report, protect=tuple(protect))
    end_line()
    return Cache(target)


def cmd_datagen(args: argparse.Namespace) -> int:
    """datagen; Ctrl-C leaves --out as it was (publish removes its staging) and exits 130."""
    from specfmt.train import outs
    from specfmt.verifier import load_hf_config

    try:
        options.check(args, DATAGEN_OPTIONS)
        out = outs.check_datagen_out(args.out, args.verifier, read_by(args), args.overwrite)
        set_threads(args.threads)
        config = load_hf_config(args.verifier)
        aux_ids = aux_ids_for(args.algorithm, config["num_hidden_layers"])
        cache = build_cache(args, Path(args.verifier), out, aux_ids, outs.inputs(args.verifier, read_by(args)))
    except KeyboardInterrupt:
        end_line()
        from specfmt.train.answers import answers_dir

        kept = answers_dir(Path(args.out))
        more = f"; the answers made so far wait in {kept}: the same command continues from them" \
            if kept.is_dir() else ""
        print(f"specfmt datagen: interrupted; {args.out} is as it was{more}", file=sys.stderr)
        return 130
    index = cache.index
    print(f"datagen: {index['samples']} samples, {index['documents']} documents, {index['tokens']} tokens "
          f"({index['supervised']} supervised), {len(index['val_prompts'])} validation prompts; "
          f"cache {index['bytes'] / 2**20:.1f} MiB in {len(index['shards'])} shard(s) at {args.out}")
    return 0


def verifier_name(verifier_dir: Path, given: str | None) -> str:
    """The hub id the config names: --verifier-name, or the origin the verifier directory records (transformers'
    _name_or_path, or the upstream model of the PROVENANCE.json that make demo-models writes)."""
    from specfmt.schemas import load

    if given:
        return given
    hub_id = load("config.strict.schema.json")["$defs"]["verifier"]["properties"]["name_or_path"]["pattern"]  # CFG-8
    for file, keys in (("config.json", ("_name_or_path",)), ("PROVENANCE.json", ("source", "upstream_model"))):
        path = verifier_dir / file
        value = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and re.fullmatch(hub_id, value):
            return value
    raise ValueError(f"cannot tell the verifier's hub id from {verifier_dir}; pass --verifier-name ORG/NAME "
                     "(a strict checkpoint names its verifier by hub id, spec CFG-8)")


def show(record: dict, total: int) -> None:
    if "resumed" in record:
        report(f"resuming from step {record['resumed']}")
        end_line()
        return
    if "validation" in record:
        v = record["validation"]
        report(f"epoch {record['epoch']} validation: tau {v['tau']:.3f}, acceptance by position "
               f"{v['acceptance_by_position']} over {v['prompts']} held-out prompts")
        end_line()
        return
    report(f"step {record['step']}/{total} loss {record['loss']:.4f} acc {record['acc_k']} "
           f"chain {record['full_acc_k']} tau~{record['tau_proxy']:.2f} {record['seconds']:.2f}s/step")


def resume_command(args: argparse.Namespace) -> str:
    """The command line that resumes this run: the same arguments, less --restart."""
    return shlex.join(["specfmt", *(a for a in args.argv if a != "--restart")])


def interrupted(args: argparse.Namespace, work: Path) -> str:
    """The one line a Ctrl-C prints: where the last checkpoint is, and the exact command that resumes from it."""
    from specfmt.train import state

    saved = work / state.CHECKPOINT / "state.json"
    try:
        step = json.loads(saved.read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"specfmt train: interrupted before the first checkpoint; start again with: {resume_command(args)}"
    return f"specfmt train: interrupted; resume from step {step} (saved in {work}) with: {resume_command(args)}"


def cmd_train(args: argparse.Namespace) -> int:
    """train, with its one-line endings: Ctrl-C says how to resume (exit 130); under torchrun only rank 0 prints."""
    from specfmt.train import outs, state

    held, work = None, None
    try:
        options.check(args, (*DATAGEN_OPTIONS, *(cls for cls, _ in train_options())))
        out, work = outs.check_train_outs(args.out, args.work, args.verifier, read_by(args), args.overwrite)
        held = state.lock(work) if rank() == 0 else None
        return run_train(args, out, work)
    except KeyboardInterrupt:
        end_line()
        if rank() == 0 and work is not None:
            print(interrupted(args, work), file=sys.stderr)
        return 130
    except (ValueError, OSError):
        if rank() != 0:
            return 2  # rank 0 says it, once
        raise
    finally:
        if held is not None:
            os.close(held)


def run_train(args: argparse.Namespace, out: Path, work: Path) -> int:
    from specfmt.text import Text
    from specfmt.train import loop
    from specfmt.train.datagen import Caches, is_cache
    from specfmt.train.outs import inputs, portable
    from specfmt.verifier import Verifier

    threads = set_threads(args.threads)
    verifier_dir, recipe = Path(args.verifier), RECIPES[args.algorithm]
    verifier = Verifier.from_pretrained(verifier_dir)  # float32: the frozen targets and the shared embedding
    aux_ids = recipe.aux_ids(verifier.num_layers)
    caches = all(is_cache(Path(d)) for d in args.data)
    if not caches and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("under torchrun, --data must be caches: run `specfmt datagen` first and pass its --out")
    cache = Caches(args.data if caches else [
        build_cache(args, verifier_dir, work / "data", aux_ids, inputs(args.verifier, read_by(args))).path])
    problems = cache.check(verifier, aux_ids)
    if problems:
        raise ValueError("; ".join(problems))
    if args.restart and (work / "checkpoint").exists():
        import shutil

        shutil.rmtree(work / "checkpoint")
    opts, export = options.from_args(TrainOptions, args), options.from_args(ExportOptions, args)
    own = options.from_args(recipe.options, args) if recipe.options else None
    start = recipe.make(verifier, verifier_name(verifier_dir, export.verifier_name), opts, own,
                        cache.token_counts(verifier.vocab_size))
    if opts.init:
        start = warm_start(start, Path(opts.init))
    text = Text.from_verifier(verifier_dir) if (verifier_dir / "tokenizer.json").is_file() else None
    eos = text.stop_ids()[0] if text and text.eos_ids else None
    run = loop.train(start, verifier, cache, opts, work, show, eos)
    if run.rank == 0:
        loop.export(run, out, export.save_dtype, loop.provenance(run, ["specfmt", *portable(args.argv)], threads))
        end_line()
        print(f"train: {run.step} optimizer steps; draft written to {out} (strict); log {work / 'log.jsonl'}"
              + (f"; held-out tau {run.validation['tau']:.3f}" if run.validation else ""))
    return 0
