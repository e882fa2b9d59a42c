"""Benchmark: datagen's self-distillation throughput, the old and the new batched decode side by side in one run.

The verifier (SmolLM2-135M-Instruct from `make demo-models`, or --verifier) answers the first --prompts training
prompts of `distill:builtin:python-docs` with --new-tokens greedy tokens each, --batch prompts at a time, in
--dtype with --threads torch threads. `old` is generate_batch as it was before issue 21 (copied below: the
whole batch decodes every step, logits for every prompt position, the key mask rebuilt per step, finished rows
kept); `new` is specfmt.generate.generate_batch. The two alternate per batch so that load on a shared machine
hits both; it prints tokens/s of each, their ratio, and how many answers agree token for token.
Absolute times are noise on a shared machine; read the ratio.

Usage: python benchmarks/datagen.py [--prompts 64] [--new-tokens 128] [--batch 16] [--new-batch 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from specfmt import nn
from specfmt.generate import generate_batch
from specfmt.text import Text
from specfmt.train.sources import is_held_out, prompt_ids, prompt_records
from specfmt.verifier import Verifier


@torch.inference_mode()
def old_generate_batch(verifier, prompts, max_new_tokens, eos_ids, temperature=0.0, generator=None):
    """generate_batch at c162656, verbatim but for this docstring (the path this benchmark measures against)."""
    lengths = torch.tensor([len(p) for p in prompts])
    width = int(lengths.max())
    pad = width - lengths  # [B]
    tokens = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens[row, int(pad[row]):] = torch.tensor(prompt)
    valid = torch.arange(width)[None, :] >= pad[:, None]  # [B, S]: keys that are real tokens
    positions = (torch.arange(width)[None, :] - pad[:, None]).clamp(min=0)  # [B, T]
    mask = (torch.ones(width, width, dtype=torch.bool).tril() & valid[:, None, :]) | torch.eye(width, dtype=torch.bool)
    verifier.truncate(0)
    logits = verifier.forward(tokens, positions=positions.to(verifier.device),
                              mask=mask[:, None].to(verifier.device)).logits[:, -1]  # [B, V]
    out: list[list[int]] = [[] for _ in prompts]
    done = torch.zeros(len(prompts), dtype=torch.bool)
    for _ in range(max_new_tokens):
        if bool(done.all()):
            break
        if temperature == 0:
            chosen = logits.argmax(-1).cpu()
        else:
            probs = torch.softmax(logits.float() / temperature, -1).cpu()  # [B, V]
            chosen = torch.multinomial(probs, 1, generator=generator)[:, 0]
        for row in range(len(prompts)):
            if not done[row]:
                out[row].append(int(chosen[row]))
                done[row] = int(chosen[row]) in eos_ids
        positions = positions[:, -1:] + 1
        valid = torch.cat([valid, torch.ones(len(prompts), 1, dtype=torch.bool)], 1)
        logits = verifier.forward(chosen[:, None].to(verifier.device), positions=positions.to(verifier.device),
                                  mask=valid[:, None, None, :].to(verifier.device)).logits[:, -1]
    return out


def old_attention(q, k, v, mask):
    """nn.attention at c162656, verbatim but for this docstring: the old path runs on it."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                            enable_gqa=q.shape[-3] != k.shape[-3])


def timed(fn, verifier, prompts, batch, new_tokens, eos) -> tuple[list[list[int]], float]:
    start, out, new_attention = time.perf_counter(), [], nn.attention
    nn.attention = old_attention if fn is old_generate_batch else new_attention
    try:
        for i in range(0, len(prompts), batch):
            out += fn(verifier, prompts[i:i + batch], new_tokens, eos)
    finally:
        nn.attention = new_attention
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verifier", default=None, help="default: SmolLM2-135M-Instruct of make demo-models")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="old path's batch (datagen's default before issue 21)")
    ap.add_argument("--new-batch", type=int, default=64, help="new path's batch")
    ap.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.verifier or subprocess.check_output(
        [sys.executable, "scripts/demo_models.py", "--print-path"], text=True).strip())
    verifier = Verifier.from_pretrained(path, dtype=getattr(torch, args.dtype))
    text = Text.from_verifier(path)
    records = [(w, r) for w, r in prompt_records("distill:builtin:python-docs")
               if not is_held_out(json.dumps(r, sort_keys=True), 0.05)]  # datagen's training prompts
    prompts = [prompt_ids(w, r, text, verifier.vocab_size) for w, r in records[:args.prompts]]
    old, new, old_s, new_s = [], [], 0.0, 0.0
    step = max(args.batch, args.new_batch)
    for i in range(0, len(prompts), step):  # alternate, so that load on the machine hits both
        o, t = timed(old_generate_batch, verifier, prompts[i:i + step], args.batch, args.new_tokens, text.eos_ids)
        old, old_s = old + o, old_s + t
        n, t = timed(generate_batch, verifier, prompts[i:i + step], args.new_batch, args.new_tokens, text.eos_ids)
        new, new_s = new + n, new_s + t
    old_rate, new_rate = sum(map(len, old)) / old_s, sum(map(len, new)) / new_s
    same = sum(a == b for a, b in zip(old, new, strict=True))
    print(f"datagen decode, {args.dtype}, {args.threads} threads, {len(prompts)} prompts x {args.new_tokens} "
          f"new tokens: old (batch {args.batch}) {old_rate:.1f} tokens/s, new (batch {args.new_batch}) "
          f"{new_rate:.1f} tokens/s, ratio {new_rate / old_rate:.2f}x; {same}/{len(prompts)} answers identical, "
          f"{agreement(old, new)}")


def agreement(old: list[list[int]], new: list[list[int]]) -> str:
    """How far the two paths' answers agree: a bfloat16 batch of another size rounds differently, and greedy
    answers part for good after the first near tie."""
    prefix = [next((i for i, (a, b) in enumerate(zip(x, y, strict=False)) if a != b), min(len(x), len(y)))
              for x, y in zip(old, new, strict=True)]
    tokens = sum(max(len(x), len(y)) for x, y in zip(old, new, strict=True))
    return (f"common prefix {sum(prefix) / len(prefix):.1f} tokens on average (median "
            f"{sorted(prefix)[len(prefix) // 2]}), {sum(prefix) / tokens:.0%} of the tokens")


if __name__ == "__main__":
    main()
