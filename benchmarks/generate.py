"""Benchmark: speculative against plain decoding with the reference runtime, side by side in one run.

A random-weight llama verifier (8 layers, hidden 512) and a one-layer EAGLE-3 draft, k = 3 and 5.
For each k it prints tokens/s of plain and speculative decoding, the measured alpha (acceptance rate
per draft position), c (one draft step over one verifier step), r (verifying k+1 tokens over one
verifier step), the Leviathan et al. bound S = tau / (k*c + r) with tau the measured tokens per step,
and the ratio of the measured speedup to S. A ratio near 1 says the runtime adds little overhead
beyond the model compute.

Two regimes, because the acceptance itself needs a trained draft (the training issue):
- random: the draft's own random weights, alpha ~ 0 (speculation cannot pay off; the ratio still
  measures overhead);
- agreeing: every output head zeroed, so the draft and the verifier both pick token 0 and every
  draft token is accepted (alpha = 1), the regime where speculation pays off most.
Absolute times are noise on a shared machine; read the ratios.

Usage: python benchmarks/generate.py [--device cpu|cuda] [--tokens N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from specfmt.algorithms import eagle3
from specfmt.defaults import resolve
from specfmt.generate import generate, generate_plain
from specfmt.proposal import Proposal
from specfmt.synthetic import random_tensors
from specfmt.verifier import Verifier
from specfmt.weights import bind_roles

H, V, LAYERS, HEADS, KV, HEAD_DIM, INTER = 512, 4096, 8, 8, 4, 64, 1536
PROMPT = list(range(1, 33))


def layer_config(num_layers: int) -> dict:
    return {"model_type": "llama", "hidden_size": H, "intermediate_size": INTER, "num_attention_heads": HEADS,
            "num_key_value_heads": KV, "head_dim": HEAD_DIM, "num_hidden_layers": num_layers, "vocab_size": V,
            "rms_norm_eps": 1e-6, "max_position_embeddings": 4096, "attention_bias": False}


def envelope(algorithm: str, **fields) -> dict:
    return {"speculators_model_type": algorithm, "speculators_config": {
        "algorithm": algorithm, "default_proposal_method": "greedy",
        "proposal_methods": [{"proposal_type": "greedy", "speculative_tokens": 3}],
        "verifier": {"name_or_path": None, "architectures": ["LlamaForCausalLM"], "hidden_size": H,
                     "num_hidden_layers": LAYERS, "vocab_size": V}}, **fields}


def build(device: str, agreeing: bool):
    verifier_config = layer_config(LAYERS)
    tensors = random_tensors(envelope("independent", transformer_layer_config=verifier_config), seed=0, std=0.05)
    verifier = Verifier.from_tensors(verifier_config, tensors, device)
    draft_config = resolve(envelope("eagle3", transformer_layer_config=layer_config(1), draft_vocab_size=V,
                                    eagle_aux_hidden_state_layer_ids=[2, 4, 7], norm_before_residual=True))
    draft_tensors = {k: v.to(device) for k, v in random_tensors(draft_config, seed=1, std=0.05).items()}
    draft = eagle3.build(draft_config, bind_roles("eagle3", draft_config, draft_tensors), verifier)
    if agreeing:
        verifier.w["lm_head"].zero_()
        draft.w["lm_head"].zero_()
    return verifier, draft


def seconds(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.inference_mode()
def costs(verifier: Verifier, draft, k: int) -> tuple[float, float]:
    """c and r, measured at the prompt's length: one draft row, and k+1 verifier rows, over one verifier row."""
    verifier.truncate(0)
    out = verifier.forward(torch.tensor(PROMPT, device=verifier.device), draft.aux_ids)
    n = len(verifier)
    token = torch.tensor([1], device=verifier.device)

    def verifier_rows(rows: int):
        verifier.forward(token.repeat(rows))
        verifier.truncate(n)

    def draft_row():
        draft.forward_rows(token, out.last[-1:], torch.tensor([n], device=verifier.device))
        for cache in draft.caches:
            cache.truncate(0)

    one = seconds(lambda: verifier_rows(1), 50)
    return seconds(draft_row, 50) / one, seconds(lambda: verifier_rows(k + 1), 50) / one


def measure(verifier: Verifier, draft, k: int, tokens: int) -> dict:
    """Plain and speculative decoding of `tokens` tokens, side by side, with c, r and the bound."""
    c, r = costs(verifier, draft, k)

    def plain():
        generate_plain(verifier, PROMPT, tokens, Proposal())

    runs = []

    def speculative():
        runs.append(generate(verifier, draft, PROMPT, tokens, Proposal(speculative_tokens=k)))

    t_plain, t_spec = seconds(plain, 3), seconds(speculative, 3)
    stats = runs[-1].stats
    bound = stats.tau / (k * c + r)
    return {"plain": tokens / t_plain, "spec": tokens / t_spec, "speedup": t_plain / t_spec, "c": c, "r": r,
            "alpha": sum(stats.acceptance_by_position) / k, "tau": stats.tau, "bound": bound,
            "ratio": t_plain / t_spec / bound}


def run(device: str, tokens: int) -> None:
    print(f"verifier: llama, {LAYERS} layers, hidden {H}, vocab {V}; draft: eagle3, 1 layer; device {device}; "
          f"{tokens} new tokens, greedy")
    print(f"{'regime':9} {'k':>2} {'plain tok/s':>11} {'spec tok/s':>10} {'speedup':>7} {'alpha':>6} {'tau':>5} "
          f"{'c':>6} {'r':>5} {'bound S':>7} {'measured/S':>10}")
    for regime in ("random", "agreeing"):
        verifier, draft = build(device, regime == "agreeing")
        for k in (3, 5):
            m = measure(verifier, draft, k, tokens)
            print(f"{regime:9} {k:>2} {m['plain']:>11.1f} {m['spec']:>10.1f} {m['speedup']:>7.2f} {m['alpha']:>6.2f} "
                  f"{m['tau']:>5.2f} {m['c']:>6.3f} {m['r']:>5.2f} {m['bound']:>7.2f} {m['ratio']:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    run(args.device, args.tokens)


if __name__ == "__main__":
    main()
