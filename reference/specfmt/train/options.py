"""The bounds of the numeric options of `specfmt datagen` and `specfmt train`, declared once and checked in one
place before any work starts: each value is finite and inside its range, or the command stops with one line that
names every flag out of bounds (exit status 2). A zero that the help documents as "all" (--threads, --limit,
--max-steps) is inside the range.
"""

from __future__ import annotations

import argparse
import math

INF = math.inf

# option (the argparse dest): (least, greatest), both allowed
BOUNDS = {
    "seq_len": (2, 1 << 20),
    "max_new_tokens": (1, 1 << 20),
    "gen_batch": (1, 1 << 16),
    "temperature": (0.0, 100.0),
    "held_out": (0.0, 1.0),
    "limit": (0, INF),  # 0: every prompt
    "threads": (0, 1 << 12),  # 0: every core this process may use
    "k": (1, 64),
    "epochs": (1, 1 << 20),
    "batch": (1, 1 << 20),
    "lr": (0.0, 1e3),
    "warmup": (0, INF),
    "step_decay": (0.0, 10.0),  # DECAY**k weighs step k: a larger one overflows the loss at large K
    "max_steps": (0, INF),  # 0: every epoch
    "save_every": (1, INF),
    "val_prompts": (0, 1 << 20),
    "val_tokens": (1, 1 << 20),
    "draft_vocab_size": (1, INF),
    "seed": (0, (1 << 32) - 1),
}


def shown(value: float) -> str:
    """A bound or a value as the command line spells it: 1048576, 0.5, inf, nan."""
    return str(int(value)) if math.isfinite(value) and float(value).is_integer() else str(float(value))


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def out_of_bounds(args: argparse.Namespace) -> list[str]:
    """`--flag: expected ..., found ...` for each numeric option of `args` that is not finite or not in range."""
    problems = []
    for dest, (low, high) in BOUNDS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if not math.isfinite(value) or not low <= value <= high:
            upper = "" if high == INF else f" and at most {shown(high)}"
            problems.append(f"{flag(dest)}: expected a finite number at least {shown(low)}{upper}, "
                            f"found {shown(value)}")
    return problems


def check(args: argparse.Namespace) -> None:
    """Raise ValueError with every numeric option out of bounds, in one line."""
    problems = out_of_bounds(args)
    if problems:
        raise ValueError("; ".join(problems))
