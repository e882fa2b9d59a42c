"""Benchmark: datagen's self-distillation throughput, the old and the new batched decode side by side in one run.

The verifier (SmolLM2-135M-Instruct from `make demo-models`, or --verifier) answers the first --prompts training
prompts of --data (`distill:builtin:python-docs`) with --new-tokens greedy tokens each, --batch prompts at a time, in
--dtype with --threads torch threads. `old` is generate_batch as it was before issue 21 (copied below: the
whole batch decodes every step, logits for every prompt position, the key mask rebuilt per step, finished rows
kept; and the attention and unpacked weights of that time); `new` is specfmt.generate.generate_batch. The arms
alternate per group so that load on a shared machine hits each; it prints tokens/s of each, their ratio to the
first, and how many answers agree token for token.
Absolute times are noise on a shared machine; read the ratio.

`refill` answers each group of --group prompts in one call of at most --new-batch rows, a row that ends taking the
next prompt (generate_batch's rows).

Usage: python benchmarks/datagen.py [--prompts 64] [--new-tokens 128] [--batch 16] [--new-batch 64]
       [--arms old,new,refill] [--data distill:builtin:python-docs]
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


def timed(arm: str, verifier, prompts, args, eos) -> tuple[list[list[int]], float]:
    """One arm's answers to `prompts` and its seconds: old and new answer --batch / --new-batch prompts per call
    (datagen before issue 21 and datagen's call per batch), refill all of them in one call of --new-batch rows."""
    start, new_attention, packed = time.perf_counter(), nn.attention, (verifier.layers, verifier.head)
    if arm == "old":  # the attention of that time, and the weights unpacked (Verifier.pack came later)
        nn.attention, verifier.layers, verifier.head = old_attention, verifier.w["layer"], None
    try:
        if arm == "refill":
            out = generate_batch(verifier, prompts, args.new_tokens, eos, rows=args.new_batch)
        else:
            fn, batch = (old_generate_batch, args.batch) if arm == "old" else (generate_batch, args.new_batch)
            out = [answer for i in range(0, len(prompts), batch)
                   for answer in fn(verifier, prompts[i:i + batch], args.new_tokens, eos)]
    finally:
        nn.attention, (verifier.layers, verifier.head) = new_attention, packed
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verifier", default=None, help="default: SmolLM2-135M-Instruct of make demo-models")
    ap.add_argument("--data", default="distill:builtin:python-docs", help="the distill spec whose prompts answer")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="old path's batch (datagen's default before issue 21)")
    ap.add_argument("--new-batch", type=int, default=64, help="new path's batch, and the rows of refill")
    ap.add_argument("--group", type=int, default=256, help="prompts each arm answers in turn (the arms alternate)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of every arm, in turn, the order reversed each time")
    ap.add_argument("--arms", default="old,new", help="comma-separated, the first is the baseline: old, new, refill")
    ap.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.verifier or subprocess.check_output(
        [sys.executable, "scripts/demo_models.py", "--print-path"], text=True).strip())
    verifier = Verifier.from_pretrained(path, dtype=getattr(torch, args.dtype))
    text = Text.from_verifier(path)
    records = [(w, r) for w, r in prompt_records(args.data, verifier, text)
               if not is_held_out(json.dumps(r, sort_keys=True), 0.05)]  # datagen's training prompts
    prompts = [prompt_ids(w, r, text, verifier.vocab_size) for w, r in records[:args.prompts]]
    arms = args.arms.split(",")
    answers, seconds = {a: [] for a in arms}, dict.fromkeys(arms, 0.0)
    for repeat in range(args.repeat):  # alternate, so that load on the machine hits every arm
        for i in range(0, len(prompts), args.group):
            for arm in arms if repeat % 2 == 0 else arms[::-1]:
                out, t = timed(arm, verifier, prompts[i:i + args.group], args, text.eos_ids)
                answers[arm], seconds[arm] = answers[arm] + out if repeat == 0 else answers[arm], seconds[arm] + t
    rate = {a: args.repeat * sum(map(len, answers[a])) / seconds[a] for a in arms}
    base = arms[0]
    print(f"datagen decode, {args.dtype}, {args.threads} threads, {len(prompts)} prompts x {args.new_tokens} "
          f"new tokens x {args.repeat} ({args.data}; batch {args.batch} old, {args.new_batch} new and refill), "
          f"mean answer {sum(map(len, answers[base])) / len(prompts):.1f} tokens:")
    for arm in arms:
        same = sum(a == b for a, b in zip(answers[base], answers[arm], strict=True))
        print(f"  {arm}: {rate[arm]:.1f} tokens/s, {rate[arm] / rate[base]:.2f}x {base}; {same}/{len(prompts)} "
              f"answers identical to {base}'s, {agreement(answers[base], answers[arm])}")


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
