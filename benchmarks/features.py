"""Benchmark: training on cached features against online features (specfmt.train.features), side by side.

On SmolLM2-135M-Instruct (`make demo-models`, or --verifier), --prompts python-docs training prompts are answered
(--new-tokens each, bfloat16) into two caches of the same documents: `cached` (the verifier's aux states stored
in bfloat16 shards) and `online` (documents only). It prints each cache's size in bytes and datagen seconds, then
trains an EAGLE-3 draft for --epochs epochs on each (same seed, --threads torch threads) and prints seconds per
epoch and the ratio. Absolute times are noise on a shared machine; read the ratios.

Usage: python benchmarks/features.py [--prompts 32] [--new-tokens 96] [--seq-len 512]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from specfmt.text import Text
from specfmt.train import loop, recipes
from specfmt.train.datagen import Caches, DataOptions, write_cache
from specfmt.train.recipes.eagle3 import Eagle3Options, eagle3_aux_ids
from specfmt.verifier import Verifier


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verifier", default=None)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.verifier or subprocess.check_output(
        [sys.executable, "scripts/demo_models.py", "--print-path"], text=True).strip())
    text, generator = Text.from_verifier(path), Verifier.from_pretrained(path, dtype=torch.bfloat16)
    verifier = Verifier.from_pretrained(path)  # float32, as specfmt train loads it
    aux_ids = eagle3_aux_ids(verifier.num_layers)
    opts = DataOptions(["distill:builtin:python-docs"], seq_len=args.seq_len, max_new_tokens=args.new_tokens,
                       batch=64, limit=args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        caches, made, seconds = {}, {}, {"cached": 0.0, "online": 0.0}
        for features in ("cached", "online"):
            start = time.perf_counter()
            caches[features] = write_cache(Path(tmp) / features, generator, text, aux_ids,
                                           replace(opts, features=features), lambda line: None)
            made[features] = time.perf_counter() - start
        for epoch in range(args.epochs):  # alternate, so that load on the machine hits both
            for features in ("cached", "online"):
                work = Path(tmp) / f"{features}-{epoch}"
                seconds[features] += epoch_seconds(Caches([caches[features]]), verifier, work)
        for features in ("cached", "online"):
            print(f"{features}: cache {size(caches[features]):,} bytes, datagen {made[features]:.1f} s, "
                  f"{seconds[features] / args.epochs:.1f} s/epoch over {len(Caches([caches[features]]))} samples")
        ratio = seconds["online"] / seconds["cached"]
        print(f"features, SmolLM2-135M-Instruct, {args.threads} threads, {args.prompts} prompts x {args.new_tokens} "
              f"tokens, {args.epochs} alternating epochs each: online/cached seconds per epoch {ratio:.2f}x, cache "
              f"bytes {size(caches['online']) / size(caches['cached']):.4f}x")


def epoch_seconds(cache: Caches, verifier: Verifier, work: Path) -> float:
    """Seconds of one epoch of EAGLE-3 training (k 3, batch 2, 8192 draft tokens) on `cache`."""
    opts = loop.TrainOptions(steps=3, epochs=1, batch=2, lr=1e-3, warmup=2, save_every=10**6, val_prompts=0)
    recipe = recipes.RECIPES["eagle3"].make(verifier, "bench", opts, Eagle3Options(8192),
                                            cache.token_counts(verifier.vocab_size))
    start = time.perf_counter()
    loop.train(recipe, verifier, cache, opts, work, lambda record, total: None)
    return time.perf_counter() - start

if __name__ == "__main__":
    main()
