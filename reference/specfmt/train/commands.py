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

from specfmt.train import TRAINABLE


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verifier", required=True, help="Hugging Face checkpoint directory of the verifier")
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="a datagen cache directory, or a data spec: PATH.jsonl (conversations or text records), "
                        "distill:PROMPTS (the verifier answers them), distill:builtin:python-docs, or a text file; "
                        "repeatable")
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per packed sample (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="per distilled answer (default: %(default)s)")
    p.add_argument("--gen-batch", type=int, default=64, help="prompts answered at once (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.0, help="of distilled answers; 0 is greedy")
    p.add_argument("--held-out", type=float, default=0.05, help="fraction kept for validation (default: %(default)s)")
    p.add_argument("--limit", type=int, default=0,
                   help="at most this many prompts per distill source, spread evenly over it (0: all)")
    p.add_argument("--gen-dtype", choices=("float32", "bfloat16"), default="bfloat16",
                   help="verifier dtype for answering and features (default: %(default)s)")
    p.add_argument("--features", choices=("cached", "online"), default="cached",
                   help="cached: the verifier's states stored in the cache; online: only the token documents, the "
                        "states computed while training (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: every core this process may use)")


def add_parsers(sub) -> None:
    d = sub.add_parser("datagen", help="documents and the verifier's hidden states, cached for training")
    add_data_options(d)
    d.add_argument("--out", required=True, help="cache directory to write (an existing datagen cache is rewritten)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing --out that is not a datagen cache")
    d.add_argument("--algorithm", choices=TRAINABLE, default="eagle3",
                   help="the draft the features are for: which aux states to keep (default: %(default)s)")
    d.set_defaults(func=cmd_datagen)
    t = sub.add_parser("train", help="train a draft for a frozen verifier; writes a strict checkpoint")
    t.add_argument("algorithm", choices=TRAINABLE, help="the kind of draft to train")
    add_data_options(t)
    t.add_argument("--out", required=True, help="directory of the trained draft (a strict checkpoint; one that "
                                                "specfmt train wrote is replaced)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out checkpoint that specfmt train "
                                                            "did not write")
    t.add_argument("--work", help="checkpoints, log and data cache (default: OUT.work)")
    t.add_argument("--k", type=int, default=3, help="draft tokens per proposal: TTT steps, heads or stages")
    t.add_argument("--epochs", type=int, default=1, help="passes over the training samples")
    t.add_argument("--batch", type=int, default=4, help="samples per optimizer step over all ranks")
    t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW")
    t.add_argument("--warmup", type=int, default=20, help="optimizer steps of linear warm-up")
    t.add_argument("--step-decay", type=float, default=0.8, help="loss weight of step k is DECAY**k")
    t.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: all epochs)")
    t.add_argument("--save-every", type=int, default=50, help="optimizer steps between checkpoints")
    t.add_argument("--val-prompts", type=int, default=8, help="held-out prompts decoded after each epoch")
    t.add_argument("--val-tokens", type=int, default=64, help="tokens decoded per held-out prompt")
    t.add_argument("--draft-vocab-size", type=int, default=8192, help="eagle3: most frequent supervised tokens")
    t.add_argument("--verifier-name", help="hub id of the verifier for the config (default: from the verifier)")
    t.add_argument("--save-dtype", choices=("float32", "bfloat16"), default="bfloat16",
                   help="dtype of the floating-point tensors written")
    t.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: mixed precision, the forward's matrix products in bfloat16 (weights and optimizer "
                        "state stay float32); faster on CPUs with AMX or AVX512-BF16 (default: %(default)s)")
    t.add_argument("--seed", type=int, default=0, help="seed of initialization, shuffling and sampling")
    t.add_argument("--restart", action="store_true", help="discard the checkpoint in the work directory")
    t.set_defaults(func=cmd_train)


def data_options(args: argparse.Namespace):
    from specfmt.train.datagen import DataOptions

    return DataOptions(args.data, args.seq_len, args.max_new_tokens, args.gen_batch, args.temperature,
                       args.held_out, args.limit, getattr(args, "seed", 0), args.features)


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
    """The verifier states the draft reads: EAGLE-3's CFG-9 fallback ids; none for heads on the last state."""
    from specfmt.train.recipes import eagle3_aux_ids

    return eagle3_aux_ids(num_layers) if algorithm == "eagle3" else ()


def build_cache(args, verifier_dir: Path, target: Path, aux_ids: tuple[int, ...], protect: list[Path]):
    """The cache of args.data at `target`: reused when it exists for the same options, else written."""
    import torch

    from specfmt.text import Text
    from specfmt.train.datagen import Cache, is_cache, write_cache
    from specfmt.verifier import Verifier

    opts = data_options(args)
    if is_cache(target, current=True):
        cache = Cache(target)
        if cache.index["options"] == asdict(opts) and tuple(cache.index["aux_ids"]) == aux_ids:
            return cache
    verifier = Verifier.from_pretrained(verifier_dir, dtype=getattr(torch, args.gen_dtype))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_cache(target, verifier, Text.from_verifier(verifier_dir), aux_ids, opts, report, protect=tuple(protect))
    end_line()
    return Cache(target)


def cmd_datagen(args: argparse.Namespace) -> int:
    """datagen; Ctrl-C leaves --out as it was (publish removes its staging) and exits 130."""
    from specfmt.train import options, outs
    from specfmt.verifier import load_hf_config

    try:
        options.check(args)
        out = outs.check_datagen_out(args.out, args.verifier, args.data, args.overwrite)
        set_threads(args.threads)
        config = load_hf_config(args.verifier)
        aux_ids = aux_ids_for(args.algorithm, config["num_hidden_layers"])
        cache = build_cache(args, Path(args.verifier), out, aux_ids, outs.inputs(args.verifier, args.data))
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
    from specfmt.train import options, outs, state

    held, work = None, None
    try:
        options.check(args)
        out, work = outs.check_train_outs(args.out, args.work, args.verifier, args.data, args.overwrite)
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
    import torch

    from specfmt import __version__
    from specfmt.text import Text
    from specfmt.train import loop, recipes
    from specfmt.train.datagen import Caches, is_cache
    from specfmt.train.outs import inputs
    from specfmt.verifier import Verifier

    threads = set_threads(args.threads)
    verifier_dir = Path(args.verifier)
    verifier = Verifier.from_pretrained(verifier_dir)  # float32: the frozen targets and the shared embedding
    aux_ids = aux_ids_for(args.algorithm, verifier.num_layers)
    caches = all(is_cache(Path(d)) for d in args.data)
    if not caches and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("under torchrun, --data must be caches: run `specfmt datagen` first and pass its --out")
    cache = Caches(args.data if caches else [
        build_cache(args, verifier_dir, work / "data", aux_ids, inputs(args.verifier, args.data)).path])
    problems = cache.check(verifier, aux_ids)
    if problems:
        raise ValueError("; ".join(problems))
    if args.restart and (work / "checkpoint").exists():
        import shutil

        shutil.rmtree(work / "checkpoint")
    recipe = recipes.recipe(args.algorithm, verifier, verifier_name(verifier_dir, args.verifier_name), args.k,
                            cache.token_counts(verifier.vocab_size), args.draft_vocab_size, args.seed)
    opts = loop.TrainOptions(args.k, args.epochs, args.batch, args.lr, args.warmup, args.step_decay, 1.0, args.seed,
                             args.max_steps, args.save_every, 1, args.val_prompts, args.val_tokens,
                             args.precision)
    text = Text.from_verifier(verifier_dir) if (verifier_dir / "tokenizer.json").is_file() else None
    eos = text.stop_ids()[0] if text and text.eos_ids else None
    run = loop.train(recipe, verifier, cache, opts, work, show, eos)
    if run.rank == 0:
        last = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
        validation = next((r["validation"] for r in reversed(last) if "validation" in r), None)
        provenance = {"tool": "specfmt train", "specfmt_version": __version__, "command": ["specfmt", *args.argv],
                      "data": {k: cache.index[k] for k in ("samples", "documents", "tokens", "supervised")} |
                      {"datagen": [part.index["options"] for part in cache.parts]}, "optimizer_steps": run.step,
                      "validation": validation, "threads": threads, "torch": torch.__version__}
        loop.export(run, out, args.save_dtype, provenance)
        end_line()
        print(f"train: {run.step} optimizer steps; draft written to {out} (strict); log {work / 'log.jsonl'}"
              + (f"; held-out tau {validation['tau']:.3f}" if validation else ""))
    return 0
