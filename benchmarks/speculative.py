"""Benchmark: speculative decoding of a real verifier and draft against the verifier alone, side by side in
one process, for several k, with the Leviathan et al. bound for each, on one or more prompt sets, and a peer row:
transformers' AutoModelForCausalLM (LlamaForCausalLM for a llama verifier) .generate, greedy, against our plain
greedy decoding on the same prompts.

--prompts is a prompt file or an evaluation set, evalset:NAME (specfmt.evalsets: python-docs, humaneval, chat),
and may be repeated: the first set is measured at every --k (and gives the peer row), every set at --main-k, all
in the same process with the same threads and dtype, --limit prompts each. Each --tree (repeatable; the grammar of
`specfmt eval --tree`, specfmt.cli_tree.TREE_GRAMMAR) is measured on the first set beside the chains, greedy,
as evaluate() measures a chain; a tree has no bound (specfmt.evaluate's docstring says why).

For each k, specfmt.evaluate.evaluate() alternates plain and speculative decoding per prompt and reports
tokens/s, speedup, tau, alpha, c, r and the bound S = expected_tokens(alpha, k) / (k c + r). The peer row
alternates our plain decoding and transformers' per prompt and reports the ratio of their tokens/s and
whether the tokens are the same. Absolute times are noise on a shared machine; read the ratios.

Writes OUT/results.json (schema specfmt.bench.speculative/2: "runs", the first set at each k; "sets", every set
at --main-k, each result tagged with its "prompt_set"; "trees", the first set with each --tree, tagged with its
"spec" too; "skipped", by k or tree; "peer"), OUT/acceptance.png (acceptance by position at --main-k, a group of
bars per set), OUT/speedup_vs_k.png (the first set) and, with --tree, OUT/speedup_vs_nodes.png (speedup against
the nodes verified per step: a chain's k, a tree's nodes).

Usage: python benchmarks/speculative.py --verifier DIR --draft DIR --prompts FILE|evalset:NAME [--prompts ...]
    [--dtype bfloat16] [--k 1 2 3 4 5] [--main-k 3] [--tree dynamic:16,4,5 ...] [--max-new-tokens 64] [--limit N]
    [--threads N] [--out bench/]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

from specfmt.cli_eval import eval_prompts
from specfmt.cli_tree import parse_tree
from specfmt.eval_report import format_summary, plot, tree_label
from specfmt.evaluate import evaluate, set_threads
from specfmt.findings import ValidationError
from specfmt.generate import generate_plain
from specfmt.proposal import Proposal
from specfmt.runtime import load_draft, pick_dtype
from specfmt.verifier import Verifier


def refuse(message: str) -> None:
    print(f"benchmarks/speculative.py: {message}", file=sys.stderr)
    sys.exit(2)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def load_peer(verifier_dir: str, dtype: torch.dtype, eos: int | None):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(verifier_dir, dtype=dtype).eval()  # LlamaForCausalLM for llama
    model.generation_config.eos_token_id = eos  # stop where ours stops, or nowhere
    return model


@torch.inference_mode()
def peer_generate(model, prompt: list[int], max_new_tokens: int, eos: int | None) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
                         eos_token_id=eos, pad_token_id=eos if eos is not None else 0)
    return out[0, len(prompt):].tolist()


def peer_row(model, verifier: Verifier, prompts: list[list[int]], max_new_tokens: int, eos: int | None) -> dict:
    """Our plain greedy decoding and transformers' on each prompt, alternating which runs first."""
    def ours(p):
        return timed(lambda: generate_plain(verifier, p, max_new_tokens, Proposal(), eos_token_id=eos))

    def theirs(p):
        return timed(lambda: peer_generate(model, p, max_new_tokens, eos))

    generate_plain(verifier, prompts[0], 8, Proposal(), eos_token_id=eos)  # warm-up of both, a few tokens
    peer_generate(model, prompts[0], 8, eos)
    totals = {"ours_tokens": 0, "ours_seconds": 0.0, "peer_tokens": 0, "peer_seconds": 0.0}
    mismatches = []
    for i, p in enumerate(prompts):
        if i % 2 == 0:
            a, ta = ours(p)
            b, tb = theirs(p)
        else:
            b, tb = theirs(p)
            a, ta = ours(p)
        totals["ours_tokens"] += len(a)
        totals["ours_seconds"] += ta
        totals["peer_tokens"] += len(b)
        totals["peer_seconds"] += tb
        if a != b:
            mismatches.append(i)
    ours_tps, peer_tps = totals["ours_tokens"] / totals["ours_seconds"], totals["peer_tokens"] / totals["peer_seconds"]
    return {"peer": f"transformers {type(model).__name__}.generate(do_sample=False)", **totals,
            "tokens_per_s_ours": ours_tps, "tokens_per_s_peer": peer_tps, "peer_over_ours": peer_tps / ours_tps,
            "identical": len(prompts) - len(mismatches), "mismatches": mismatches}


def plot_speedup(runs: list[dict], peer: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ks = [r["k"] for r in runs]
    ax.plot(ks, [r["speedup"] for r in runs], "o-", label="measured speedup (ours, spec / plain)")
    ax.plot(ks, [r["bound"] for r in runs], "s--", label="Leviathan bound E[tokens] / (k c + r)")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.axhline(peer["peer_over_ours"], color="tab:red", linestyle=":",
               label=f"transformers plain / ours plain ({peer['peer_over_ours']:.2f})")
    ax.set(xlabel="k (drafts per step)", ylabel="tokens/s over our plain decoding", xticks=ks,
           title=f"speedup against k ({runs[0]['dtype']}, {runs[0]['threads']} threads)")
    ax.legend(fontsize=8)
    fig.savefig(path)


def plot_speedup_vs_nodes(runs: list[dict], trees: list[dict], path: Path) -> None:
    """Speedup against the nodes verified per step: the chains (k nodes) as a line, each tree as a labelled point."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([r["nodes_per_step"] for r in runs], [r["speedup"] for r in runs], "o-", label="chains (k = nodes)")
    ax.plot([t["nodes_per_step"] for t in trees], [t["speedup"] for t in trees], "s", color="tab:green",
            label="trees")
    for t in trees:
        ax.annotate(f"{t['spec']} (tau {t['tau']:.2f})", (t["nodes_per_step"], t["speedup"]), fontsize=7,
                    textcoords="offset points", xytext=(-4, 5), ha="right")  # leftwards: the last point is a tree
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set(xlabel="nodes verified per step (a chain: k)", ylabel="tokens/s over our plain decoding",
           title=f"speedup against tree size ({runs[0]['dtype']}, {runs[0]['threads']} threads)")
    ax.legend(fontsize=8)
    fig.savefig(path)


def print_trees(trees: list[dict]) -> None:
    print(f"\n{trees[0]['prompt_set']} with each tree (greedy; no bound for a tree):")
    print(f"{'tree':<24} {'nodes':>5} {'depth':>5} {'plain tok/s':>11} {'spec tok/s':>10} {'speedup':>7} {'tau':>5} "
          f"{'c/node':>6} {'r':>5} {'identical':>9}  acceptance by depth")
    for t in trees:
        print(f"{t['spec']:<24} {t['nodes_per_step']:>5.1f} {t['k']:>5} {t['tokens_per_s_plain']:>11.1f} "
              f"{t['tokens_per_s_speculative']:>10.1f} {t['speedup']:>7.3f} {t['tau']:>5.2f} {t['c']:>6.3f} "
              f"{t['r']:>5.2f} {t['identical']:>5}/{t['prompts']}  "
              f"{[round(a, 2) for a in t['acceptance_by_position']]}")


def print_table(runs: list[dict], skipped: dict, peer: dict) -> None:
    print(f"\n{runs[0]['prompt_set']} at each k:")
    print(f"{'k':>2} {'plain tok/s':>11} {'spec tok/s':>10} {'speedup':>7} {'tau':>5} {'alpha':>5} {'c':>6} "
          f"{'r':>5} {'bound':>6} {'speedup/bound':>13} {'identical':>9}")
    for r in runs:
        print(f"{r['k']:>2} {r['tokens_per_s_plain']:>11.1f} {r['tokens_per_s_speculative']:>10.1f} "
              f"{r['speedup']:>7.3f} {r['tau']:>5.2f} {r['alpha']:>5.2f} {r['c']:>6.3f} {r['r']:>5.2f} "
              f"{r['bound']:>6.3f} {r['speedup_over_bound']:>13.3f} {r['identical']:>5}/{r['prompts']}")
    print(f"(1-minute load average at the end of each k: {[r['load_average'] for r in runs]})")
    for k, message in skipped.items():
        print(f"{k:>2} skipped: {message}")
    print(f"peer: transformers {peer['tokens_per_s_peer']:.1f} tok/s, ours plain {peer['tokens_per_s_ours']:.1f} "
          f"tok/s, transformers / ours {peer['peer_over_ours']:.3f}, identical tokens {peer['identical']}/"
          f"{len(peer['mismatches']) + peer['identical']}; our speculative decoding / transformers "
          f"{peer['speculative_over_peer']:.3f}")


def load(args: argparse.Namespace):
    """The prompt sets (by their --prompts value), eos ids, verifier and draft; refuses (exit 2, one line) on a
    usage mistake."""
    if not (Path(args.verifier) / "config.json").is_file():
        refuse(f"{args.verifier}: not a verifier directory (no config.json)")
    if not Path(args.draft).is_dir():
        refuse(f"{args.draft}: no such draft directory")
    if importlib.util.find_spec("matplotlib") is None or importlib.util.find_spec("transformers") is None:
        refuse("the benchmark needs matplotlib and transformers (pip install specfmt[plots] transformers)")
    if len(set(args.prompts)) < len(args.prompts):
        refuse(f"--prompts: a set given twice in {args.prompts}")
    try:
        args.trees = {spec: parse_tree(spec) for spec in args.tree}
    except ValueError as e:
        refuse(str(e))
    sets = {}
    try:
        for spec in args.prompts:
            sets[spec], eos_ids = eval_prompts(args.verifier, spec, args.limit)
        verifier = Verifier.from_pretrained(args.verifier, "cpu", pick_dtype(args.dtype))
        draft, config = load_draft(args.draft, verifier)
    except ValidationError as e:
        refuse(f"the draft has errors: {'; '.join(str(f) for f in e.findings)}")
    except (OSError, ValueError, TypeError, KeyError) as e:
        refuse(str(e))
    if args.trees and not hasattr(draft, "branch"):
        refuse(f"--tree: {config['speculators_model_type']} drafts cannot branch (spec/trees.md#TRE-5)")
    return sets, eos_ids, verifier, draft


def measure_trees(prompts: list[list[int]], eos_ids: list[int], verifier, draft, args, skipped: dict) -> list[dict]:
    """The first set with each --tree, tagged with its spec; a tree the draft cannot propose goes to `skipped`."""
    trees = []
    for spec, shape in args.trees.items():
        try:
            trees.append({"prompt_set": args.prompts[0], "spec": spec,
                          **evaluate(verifier, draft, prompts, shape.depth, args.max_new_tokens, eos_ids, shape=shape)})
            print(f"{args.prompts[0]} tree {spec} ({tree_label(trees[-1]['tree'])}): speedup "
                  f"{trees[-1]['speedup']:.3f}, tau {trees[-1]['tau']:.3f}", flush=True)
        except ValueError as e:
            skipped[spec] = str(e)
    return trees


def measure(sets: dict[str, list[list[int]]], eos_ids: list[int], verifier, draft, args) -> tuple[list, list, dict]:
    """The first set at every k, then each other set at --main-k: (runs of the first set, one result per set at
    main k, k -> why it was skipped). Every result is tagged with its prompt_set."""
    first, *others = sets
    runs, skipped = [], {}
    for k in args.k:
        try:
            runs.append({"prompt_set": first, **evaluate(verifier, draft, sets[first], k, args.max_new_tokens,
                                                         eos_ids)})
            print(f"{first} k {k}: speedup {runs[-1]['speedup']:.3f}, tau {runs[-1]['tau']:.3f}, bound "
                  f"{runs[-1]['bound']:.3f}", flush=True)
        except ValueError as e:
            skipped[k] = str(e)
    if not runs:
        refuse(f"no k could be evaluated: {skipped}")
    main_run = next((r for r in runs if r["k"] == args.main_k), runs[0])
    per_set = [main_run]
    for name in others:
        per_set.append({"prompt_set": name, **evaluate(verifier, draft, sets[name], main_run["k"],
                                                       args.max_new_tokens, eos_ids)})
        print(f"{name} k {main_run['k']}: speedup {per_set[-1]['speedup']:.3f}, tau {per_set[-1]['tau']:.3f}",
              flush=True)
    return runs, per_set, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifier", required=True)
    parser.add_argument("--draft", required=True)
    parser.add_argument("--prompts", required=True, action="append", help="a prompt file or evalset:NAME; repeatable")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--main-k", type=int, default=3, help="the k of every set and of acceptance.png")
    parser.add_argument("--tree", action="append", default=[], help="a tree measured on the first set beside the "
                        "chains (dynamic:T,K,D, static:I,B,D or static:PATHS); repeatable")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--limit", type=int, help="prompts per set")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="bench")
    args = parser.parse_args()
    sets, eos_ids, verifier, draft = load(args)
    threads = set_threads(args.threads)
    print(f"{', '.join(f'{name} ({len(p)} prompts)' for name, p in sets.items())}; {args.max_new_tokens} new "
          f"tokens, {args.dtype}, {threads} threads", flush=True)
    runs, per_set, skipped = measure(sets, eos_ids, verifier, draft, args)
    trees = measure_trees(sets[args.prompts[0]], eos_ids, verifier, draft, args, skipped)
    eos = eos_ids[0] if eos_ids else None
    peer = peer_row(load_peer(args.verifier, pick_dtype(args.dtype), eos), verifier, sets[args.prompts[0]],
                    args.max_new_tokens, eos)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peer["speculative_over_peer"] = per_set[0]["tokens_per_s_speculative"] / peer["tokens_per_s_peer"]
    (out / "results.json").write_text(json.dumps({"schema": "specfmt.bench.speculative/2", "main_k": per_set[0]["k"],
                                                  "runs": runs, "sets": per_set, "trees": trees, "skipped": skipped,
                                                  "peer": peer},
                                                 indent=2) + "\n")
    plot(per_set, out / "acceptance.png")
    plot_speedup(runs, peer, out / "speedup_vs_k.png")
    if trees:
        plot_speedup_vs_nodes(runs, trees, out / "speedup_vs_nodes.png")
    print_table(runs, skipped, peer)
    if trees:
        print_trees(trees)
    print(f"\nevery set at k = {per_set[0]['k']} ({args.dtype}, {threads} threads, speedup over plain decoding "
          f"measured side by side per set):\n{format_summary(per_set)}")
    print(f"wrote {out / 'results.json'}, {out / 'acceptance.png'}, {out / 'speedup_vs_k.png'}"
          + (f", {out / 'speedup_vs_nodes.png'}" if trees else ""))


if __name__ == "__main__":
    main()
