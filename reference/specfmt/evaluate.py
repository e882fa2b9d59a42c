"""Speed of speculative decoding against the verifier alone, on the same prompts in one process, and the
bound Leviathan et al. predict from the measured acceptance and costs.

Leviathan, Kalman, Matias (2023), "Fast Inference from Transformers via Speculative Decoding", ICML,
Theorem 3.8: with per-token acceptance rate alpha (i.i.d. model), K drafts per step and cost coefficient
c, the expected walltime improvement factor is (1 - alpha^(K+1)) / ((1 - alpha)(K c + 1)). The paper
assumes a pass over K+1 tokens costs what a one-token step costs; here that cost is measured as r, so
the bound is expected_tokens(alpha, K) / (K c + r) (r = 1 is the paper's factor).

A tree (spec/trees.md, `shape`) is measured as a chain is, side by side with plain decoding; its depth D takes the
chain's k, acceptance is by depth, and no bound is given: Theorem 3.8's i.i.d. model describes one chain, and
a tree's expected accepted length depends on how its branches' acceptances are correlated, which no closed form
here captures (alpha, expected_tokens, bound and speedup_over_bound are then null).

`evaluate()` returns a JSON-serialisable dict; its keys (schema "specfmt.eval/1"):
    schema                  "specfmt.eval/1"
    k, max_new_tokens       drafts per step (a tree: its depth D, TRE-1), new-token limit per prompt
    tree                    null for a chain; a tree: {"proposal_type": "static_tree", "paths": [...]} or
                            {"proposal_type": "dynamic_tree", "speculative_tokens", "expansion_factor", "depth"}
    nodes_per_step          mean draft tokens (a tree: nodes) verified per step (TRE-9)
    dtype, device, threads  verifier dtype ("bfloat16"), device ("cpu"), torch threads used
    load_average            the machine's 1-minute load average at the end (null where unknown): a load
                            above the CPU count means other processes took time from the measurement
    timing_warning          timing_warning() at the end: a line saying the timings are unreliable, or null
    prompts                 number of prompts
    eos_token_id            the id decoding stops on (the first of eos_ids), or null
    tokens_plain, tokens_speculative     tokens generated in all prompts, by each decoder
    seconds_plain, seconds_speculative   wall time of all prompts, by each decoder (prefill included)
    tokens_per_s_plain, tokens_per_s_speculative   tokens / seconds
    speedup                 tokens_per_s_speculative / tokens_per_s_plain
    steps                   verifier steps of speculative decoding, all prompts
    tau                     mean tokens committed per step (accepted drafts + 1)
    acceptance_by_position  [k] fraction of steps whose j-th draft was accepted (a tree: that accepted depth j + 1)
    alpha                   per-token acceptance rate, maximum likelihood (alpha_mle); null for a tree
    expected_tokens         expected_tokens(alpha, k); null for a tree
    c, r                    cost coefficients (measure_costs); t_verify_1, t_verify_k1, t_draft in seconds
    bound                   leviathan_bound(alpha, k, c, r); null for a tree
    speedup_over_bound      speedup / bound; null for a tree
    identical               prompts whose speculative tokens equal the plain ones
    mismatches              indices of the prompts that differ (a bf16 near tie can flip a token)
    first_difference        for each mismatch, the index of the first new token that differs
    prompt_set              (evaluate_sets only) the set's name: "evalset:NAME" or the prompt file's path

`evaluate_sets()` evaluates several prompt sets one after the other in the same process, thread count and
dtype, each with its own side-by-side speedup; `specfmt eval` with several --prompts writes
{"schema": "specfmt.eval.sets/1", "sets": [result, ...]}, and with one the result alone.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable

import torch

from specfmt import tree_step
from specfmt.generate import generate, generate_plain
from specfmt.proposal import Context, Picker, Proposal
from specfmt.tree import DynamicTree, StaticTree, attention

SCHEMA = "specfmt.eval/1"
SETS_SCHEMA = "specfmt.eval.sets/1"


def alpha_mle(accepted: list[int], k: int) -> float:
    """Per-token acceptance rate alpha, estimated by maximum likelihood from accepted drafts per step.

    Under the i.i.d. model each draft is accepted with probability alpha until the first rejection, so a
    step that accepts n < k drafts has probability alpha^n (1 - alpha) and a step that accepts all k has
    alpha^k. The log-likelihood of the steps is S log(alpha) + m log(1 - alpha), with S = sum(n) and
    m = #{steps with n < k}; its derivative S/alpha - m/(1 - alpha) vanishes at alpha = S / (S + m).
    No step at all gives 0.0.
    """
    total = sum(accepted)
    rejected = sum(1 for n in accepted if n < k)
    return total / (total + rejected) if total + rejected else 0.0


def expected_tokens(alpha: float, k: int) -> float:
    """Expected tokens per verifier step, (1 - alpha^(k+1)) / (1 - alpha); k + 1 when alpha is 1.
    Leviathan et al. 2023, eq. (1)."""
    if alpha >= 1.0:
        return float(k + 1)
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def leviathan_bound(alpha: float, k: int, c: float, r: float) -> float:
    """Expected speedup of speculative over plain decoding: expected_tokens(alpha, k) / (k c + r).

    c: draft time per drafted token over the time of one plain verifier step (the paper's c);
    r: verifier time for one pass over k + 1 tokens over the time of one plain verifier step (the paper
    takes r = 1). Leviathan et al. 2023, Theorem 3.8, with r generalising the verification cost."""
    return expected_tokens(alpha, k) / (k * c + r)


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS reports none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def timing_warning() -> str | None:
    """A warning line when the 1-minute load average exceeds the usable cores: other processes then take time
    from the measurement, and a speedup measured so is unreliable (one run under load 4x the cores printed 3.24x
    against a bound of 0.63x). None on a quiet machine, or where the OS reports no load average."""
    load, cores = load_average(), usable_cores()
    if load is None or load <= cores:
        return None
    return (f"warning: load average {load:.2f} exceeds the {cores} usable cores: other processes took time from "
            "the measurement, so the timings and the speedup are unreliable; rerun on a quieter machine")


def set_threads(count: int | None = None) -> int:
    """Set torch's intra-op threads to `count` (default: the CPUs this process may run on) and return the
    count in use; a bare python may otherwise not use every core it is given."""
    torch.set_num_threads(usable_cores() if count is None else count)
    return torch.get_num_threads()


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _median_seconds(fn, repeats: int, device) -> float:
    """Median wall time of `fn` over `repeats` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def describe_tree(shape: StaticTree | DynamicTree | None) -> dict | None:
    """A tree as the result's "tree" key: its proposal_type and fields (a static tree: its paths); None for a chain."""
    if shape is None:
        return None
    kind = "static_tree" if isinstance(shape, StaticTree) else "dynamic_tree"
    return {"proposal_type": kind, **dataclasses.asdict(shape)}


@torch.inference_mode()
def measure_costs(verifier, draft, prompt_ids: list[int], k: int, repeats: int = 20,
                  shape: StaticTree | DynamicTree | None = None) -> dict:
    """c and r after `prompt_ids`: medians of a one-token verifier step, a (k+1)-token verifier pass and
    draft.propose of k tokens (steady state: the catch-up over the prompt is done first). With a tree `shape`: the
    verifier pass over the tree's N + 1 rows under its mask (TRE-6) and the tree's proposal, and c per node, so that
    a step costs N c + r plain steps as a chain's costs k c + r."""
    verifier.truncate(0)
    draft.reset()
    out = verifier.forward(torch.tensor(prompt_ids), draft.aux_ids)
    n = len(verifier)
    pending = int(out.logits[-1].argmax())
    ctx = Context(list(prompt_ids) + [pending], out.aux, out.last, out.normed)
    if shape is None:
        def propose():
            return draft.propose(ctx, k, Picker())
    else:
        def propose():
            return tree_step.propose(draft, ctx, shape, Picker(), verifier.vocab_size)
    drafted = propose()  # rows over the prompt; each later call recomputes only its own rows
    device, positions, mask = verifier.device, None, None
    if shape is None:
        tokens, nodes = torch.tensor([pending] * (k + 1)), k
    else:
        tokens, nodes = torch.tensor(drafted.tokens), len(drafted.tokens) - 1
        positions, mask = (t.to(device) for t in attention(drafted, n))

    def verify(rows: int, aux_ids: tuple[int, ...], positions=None, mask=None) -> None:
        verifier.forward(tokens[:rows], aux_ids, positions, mask)
        verifier.truncate(n)

    t_verify_1 = _median_seconds(lambda: verify(1, ()), repeats, device)
    t_verify_k1 = _median_seconds(lambda: verify(nodes + 1, draft.aux_ids, positions, mask), repeats, device)
    t_draft = _median_seconds(propose, repeats, device)
    return {"c": t_draft / nodes / t_verify_1, "r": t_verify_k1 / t_verify_1, "t_verify_1": t_verify_1,
            "t_verify_k1": t_verify_k1, "t_draft": t_draft}


def _timed(fn, device):
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return result, time.perf_counter() - start


def _run_pair(verifier, draft, prompt: list[int], max_new_tokens: int, k: int, eos: int | None,
              plain_first: bool, shape: StaticTree | DynamicTree | None = None) -> dict:
    """Plain and speculative greedy decoding of one prompt (a chain of k, or the tree `shape`), in the given
    order, each timed."""
    device = verifier.device

    def plain():
        return _timed(lambda: generate_plain(verifier, prompt, max_new_tokens, Proposal(), eos_token_id=eos),
                      device)

    def speculative():
        return _timed(lambda: generate(verifier, draft, prompt, max_new_tokens,
                                       Proposal("greedy", speculative_tokens=k), eos_token_id=eos, shape=shape),
                      device)

    if plain_first:
        (tokens, t_plain), (gen, t_spec) = plain(), speculative()
    else:
        (gen, t_spec), (tokens, t_plain) = speculative(), plain()
    return {"plain": tokens, "speculative": gen.tokens, "accepted": gen.stats.accepted,
            "drafted": gen.stats.drafted, "t_plain": t_plain, "t_speculative": t_spec}


def progress_line(done: int, runs: list[dict]) -> str:
    """After prompt `done` of len(runs): the speculative tokens and tau of the prompts so far."""
    accepted = [n for run in runs[:done] for n in run["accepted"]]
    tokens = sum(len(run["speculative"]) for run in runs[:done])
    tau = sum(n + 1 for n in accepted) / max(len(accepted), 1)
    return f"prompt {done}/{len(runs)}: {tokens} tokens, tau {tau:.3f} so far"


def evaluate(verifier, draft, prompts: list[list[int]], k: int, max_new_tokens: int, eos_ids=(),
             warmup: int = 1, repeats: int = 20, progress: Callable[[str], None] | None = None,
             shape: StaticTree | DynamicTree | None = None) -> dict:
    """Plain against speculative greedy decoding of every prompt, alternating which runs first (plain
    first on even prompts) to cancel drift; the result dict is described in the module docstring. A tree `shape`
    replaces the chain of k (k is then its depth). `progress` receives a progress_line after each prompt. Raises
    ValueError when the draft cannot propose k tokens or the tree (Refused), or there is no prompt."""
    if not prompts:
        raise ValueError("no prompts to evaluate")
    k = k if shape is None else shape.depth
    eos = next(iter(eos_ids), None)
    costs = measure_costs(verifier, draft, prompts[0], k, repeats, shape)
    for _ in range(warmup):
        _run_pair(verifier, draft, prompts[0], min(max_new_tokens, 8), k, eos, True, shape)
    runs: list[dict] = [{} for _ in prompts]
    for i, p in enumerate(prompts):
        runs[i] = _run_pair(verifier, draft, p, max_new_tokens, k, eos, i % 2 == 0, shape)
        if progress is not None:
            progress(progress_line(i + 1, runs))
    result = {"schema": SCHEMA, "k": k, "tree": describe_tree(shape), "max_new_tokens": max_new_tokens,
              "dtype": str(verifier.dtype).removeprefix("torch."), "device": str(verifier.device),
              "threads": torch.get_num_threads(), "prompts": len(prompts), "eos_token_id": eos,
              "load_average": None if (load := load_average()) is None else round(load, 2),
              "timing_warning": timing_warning()}
    return {**result, **_aggregate(runs, costs, k, shape is not None)}


def _first_difference(a: list[int], b: list[int]) -> int:
    """The first index where two token lists differ (the shorter one's length when one extends the other)."""
    return next((j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _aggregate(runs: list[dict], costs: dict, k: int, tree: bool = False) -> dict:
    """The sums over the prompts; a tree has no alpha, expected tokens or bound (module docstring)."""
    tokens_plain = sum(len(run["plain"]) for run in runs)
    tokens_spec = sum(len(run["speculative"]) for run in runs)
    seconds_plain = sum(run["t_plain"] for run in runs)
    seconds_spec = sum(run["t_speculative"] for run in runs)
    accepted = [n for run in runs for n in run["accepted"]]
    drafted = [n for run in runs for n in run.get("drafted", ())]  # nodes per step (absent: none recorded)
    steps = max(len(accepted), 1)
    alpha = None if tree else alpha_mle(accepted, k)
    speedup = (tokens_spec / seconds_spec) / (tokens_plain / seconds_plain)
    bound = None if tree else leviathan_bound(alpha, k, costs["c"], costs["r"])
    mismatches = [i for i, run in enumerate(runs) if run["plain"] != run["speculative"]]
    first_difference = [_first_difference(runs[i]["plain"], runs[i]["speculative"]) for i in mismatches]
    return {"tokens_plain": tokens_plain, "tokens_speculative": tokens_spec, "seconds_plain": seconds_plain,
            "seconds_speculative": seconds_spec, "tokens_per_s_plain": tokens_plain / seconds_plain,
            "tokens_per_s_speculative": tokens_spec / seconds_spec, "speedup": speedup, "steps": len(accepted),
            "tau": sum(n + 1 for n in accepted) / steps, "nodes_per_step": sum(drafted) / steps,
            "acceptance_by_position": [sum(n > j for n in accepted) / steps for j in range(k)],
            "alpha": alpha, "expected_tokens": None if tree else expected_tokens(alpha, k), **costs, "bound": bound,
            "speedup_over_bound": None if tree else speedup / bound, "identical": len(runs) - len(mismatches),
            "mismatches": mismatches, "first_difference": first_difference}


def evaluate_sets(verifier, draft, sets: dict[str, list[list[int]]], k: int, max_new_tokens: int, eos_ids=(),
                  progress: Callable[[str], None] | None = None, **options) -> list[dict]:
    """evaluate() on each named prompt set in turn (same process, threads and dtype), each result tagged with
    its "prompt_set"; with several sets, `progress` lines start with the set's name. `options` go to evaluate()."""
    results = []
    for name, prompts in sets.items():
        def tagged(line: str, name: str = name) -> None:
            progress(f"{name}: {line}" if len(sets) > 1 else line)

        result = evaluate(verifier, draft, prompts, k, max_new_tokens, eos_ids,
                          progress=tagged if progress is not None else None, **options)
        results.append({"prompt_set": name, **result})
    return results
