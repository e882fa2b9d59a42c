"""The options of `specfmt datagen` and `specfmt train` as dataclasses whose fields declare their own command-line
flags: default, help, choices and bounds, once. `add_flags` puts a dataclass's flags on a parser, `from_args`
builds the dataclass from the parsed arguments, and `check` refuses, before any work starts, every number that is
not finite or not inside its bounds, in one line naming each such flag (exit status 2). A zero that the help
documents as "all" (--threads, --limit, --max-steps) is inside the range.

DataOptions is what a datagen cache records (index.json#/options) and TrainOptions what a training checkpoint
records (state.json#/options): renaming a field invalidates the caches and checkpoints made before.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

INF = math.inf
SAME = object()  # the flag of a field is --field-name


def option(default: Any = MISSING, help: str | None = None, *, bounds: tuple[float, float] | None = None,
           flag: str | None | object = SAME, choices: tuple | None = None, default_factory: Any = MISSING,
           **argparse_keywords: Any):
    """A dataclass field with its flag: `flag=None` gives it none (it is set by the program, or read from another
    option's flag of the same name); `bounds` are (least, greatest), both allowed."""
    meta = {"help": help, "bounds": bounds, "flag": flag, "choices": choices, "keywords": argparse_keywords}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(f) -> str | None:
    """The command-line flag of a field: --field-name unless the field names its own (or None)."""
    given = f.metadata.get("flag", None)
    return "--" + f.name.replace("_", "-") if given is SAME else given


def dest_of(f) -> str | None:
    flag = flag_of(f)
    return flag[2:].replace("-", "_") if flag else None


def add_flags(parser: argparse.ArgumentParser, options: type, prefix: str = "") -> None:
    """One flag per field of the dataclass `options` that has one, in field order; `prefix` starts each help."""
    for f in fields(options):
        flag = flag_of(f)
        if flag is None:
            continue
        meta, kw = f.metadata, dict(f.metadata["keywords"])
        kw["help"] = prefix + meta["help"]
        if meta["choices"]:
            kw["choices"] = meta["choices"]
        if f.default_factory is not MISSING:  # a list a repeatable flag adds to
            kw["default"] = f.default_factory()
        elif f.default is MISSING:
            kw["required"] = True
        elif f.default is False:  # a switch
            kw["action"] = "store_true"
        else:
            kw["default"] = f.default
            if type(f.default) in (int, float) and "type" not in kw:
                kw["type"] = type(f.default)
        parser.add_argument(flag, **kw)


def from_args(options: type, args: argparse.Namespace):
    """The dataclass `options` from the parsed arguments: each field from its flag, a field without a flag from
    the argument of its own name when there is one (DataOptions.seed from train's --seed), else its default."""
    values = {}
    for f in fields(options):
        dest = dest_of(f) or f.name
        if hasattr(args, dest):
            values[f.name] = getattr(args, dest)
    return options(**values)


def shown(value: float) -> str:
    """A bound or a value as the command line spells it: 1048576, 0.5, inf, nan."""
    return str(int(value)) if math.isfinite(value) and float(value).is_integer() else str(float(value))


def out_of_bounds(args: argparse.Namespace, classes: tuple[type, ...]) -> list[str]:
    """`--flag: expected ..., found ...` for each bounded option of `classes` in `args` that is not finite or not
    in range."""
    problems = []
    for f in (f for cls in classes for f in fields(cls) if f.metadata.get("bounds") and flag_of(f)):
        (low, high), value = f.metadata["bounds"], getattr(args, dest_of(f), None)
        if value is None:
            continue
        if not math.isfinite(value) or not low <= value <= high:
            upper = "" if high == INF else f" and at most {shown(high)}"
            problems.append(f"{flag_of(f)}: expected a finite number at least {shown(low)}{upper}, "
                            f"found {shown(value)}")
    return problems


def check(args: argparse.Namespace, classes: tuple[type, ...]) -> None:
    """Raise ValueError with every option of `classes` out of bounds, in one line."""
    problems = out_of_bounds(args, classes)
    if problems:
        raise ValueError("; ".join(problems))


DTYPES = ("float32", "bfloat16")


@dataclass
class DataOptions:
    """What a datagen cache is made of (index.json#/options)."""

    specs: list[str] = option(help="a datagen cache directory, or a data spec: PATH.jsonl (conversations or "
                                   "text records), distill:PROMPTS (the verifier answers them), "
                                   "distill:builtin:python-docs, or a text file; repeatable",
                              flag="--data", action="append", metavar="SPEC")
    # tokens per packed sample; a longer document is cut
    seq_len: int = option(1024, "tokens per packed sample (default: %(default)s)", bounds=(2, 1 << 20))
    max_new_tokens: int = option(256, "per distilled answer (default: %(default)s)", bounds=(1, 1 << 20))
    # prompts answered together (benchmarks/datagen.py, quiet machine, SmolLM2-135M in bfloat16 on two cores: 128
    # rows with refill answer 3.29x the tokens/s of the 16 rows of before issue 21, 64 rows 2.34x; 128 rows of
    # 700 positions keep about 2 GB of keys and values)
    batch: int = option(128, "prompts answered at once (default: %(default)s)", bounds=(1, 1 << 16),
                        flag="--gen-batch")
    # 0: the verifier's greedy answers, the regime greedy decoding then sees
    temperature: float = option(0.0, "of distilled answers; 0 is greedy", bounds=(0.0, 100.0))
    held_out: float = option(0.05, "fraction kept for validation (default: %(default)s)", bounds=(0.0, 1.0))
    limit: int = option(0, "at most this many prompts per distill source, spread evenly over it (0: all)",
                        bounds=(0, INF))
    seed: int = option(0, flag=None)  # train's --seed; datagen's is 0
    features: str = option("cached", "cached: the verifier's states stored in the cache; online: only the token "
                                     "documents, the states computed while training (default: %(default)s)",
                           choices=("cached", "online"))  # online: training computes them (train.features)
    # more data for a draft without answering a prompt twice: the same sources with a larger --limit, less what an
    # earlier cache holds (a field added after caches were made: its default is what those caches did)
    exclude: list[str] = option(
        default_factory=list, help="a datagen cache whose prompts, training and validation, the distill: sources of "
        "this one leave out; repeatable", action="append", metavar="CACHE")


@dataclass
class RunOptions:
    """How a datagen or train process runs; recorded nowhere, so it never invalidates a cache or a checkpoint."""

    gen_dtype: str = option("bfloat16", "verifier dtype for answering and features (default: %(default)s)",
                            choices=DTYPES)
    threads: int = option(0, "torch threads (default: every core this process may use)", bounds=(0, 1 << 12))


@dataclass
class TrainOptions:
    """How a draft is trained (state.json#/options: a checkpoint resumes only with the same)."""

    steps: int = option(3, "draft tokens per proposal: TTT steps, heads or stages", bounds=(1, 64), flag="--k")
    epochs: int = option(1, "passes over the training samples", bounds=(1, 1 << 20))
    batch: int = option(4, "samples per optimizer step over all ranks", bounds=(1, 1 << 20))
    lr: float = option(1e-3, "peak learning rate of AdamW", bounds=(0.0, 1e3))
    warmup: int = option(20, "optimizer steps of linear warm-up", bounds=(0, INF))  # then cosine to lr / 10
    # DECAY**k weighs step k: a larger one overflows the loss at large K
    step_decay: float = option(0.8, "loss weight of step k is DECAY**k", bounds=(0.0, 10.0))
    grad_clip: float = option(1.0, flag=None)
    max_steps: int = option(0, "stop after this many optimizer steps (0: all epochs)", bounds=(0, INF))
    save_every: int = option(50, "optimizer steps between checkpoints", bounds=(1, INF))
    log_every: int = option(1, flag=None)
    val_prompts: int = option(8, "held-out prompts decoded after each epoch", bounds=(0, 1 << 20))
    val_tokens: int = option(64, "tokens decoded per held-out prompt", bounds=(1, 1 << 20))
    # bfloat16: the forward under torch.autocast (weights and AdamW state stay float32)
    precision: str = option("float32", "bfloat16: mixed precision, the forward's matrix products in bfloat16 "
                                       "(weights and optimizer state stay float32); faster on CPUs with AMX or "
                                       "AVX512-BF16 (default: %(default)s)", choices=DTYPES)
    seed: int = option(0, "seed of initialization, shuffling and sampling", bounds=(0, (1 << 32) - 1))
    # a warm start: the trainable weights of a draft made with the same config; optimizer and schedule start anew
    init: str = option("", "continue training this draft (one specfmt train wrote with the same config, such as "
                           "an earlier run's --out): its weights replace the random initial ones; the optimizer "
                           "and the learning-rate schedule start anew", metavar="DRAFT")


@dataclass
class ExportOptions:
    """How the trained draft is written."""

    verifier_name: str | None = option(None, "hub id of the verifier for the config (default: from the verifier)")
    save_dtype: str = option("bfloat16", "dtype of the floating-point tensors written", choices=DTYPES)
