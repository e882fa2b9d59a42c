"""Numerics cases for MUST rules that only one path (or no case) reached before (issue 23, rule coverage map):

- ALG-NGRAM-3 / ALG-NGRAM-5: `propose` on the worked examples of the n-gram page, each with its own
  prompt_lookup_min and prompt_lookup_max, plus a context no length from n_min up matches.

Each case asserts the proposal its description promises, so a generator change that loses the point of a case fails
here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from conformance.generators import num_accept, num_head32
from conformance.generators.num_fixtures import FIXTURES
from conformance.generators.numerics import EXACT, MIN_TOP2_MARGIN, NumericsCase, context, models, rounded
from specfmt import save
from specfmt.proposal import Picker

NGRAM = "spec/algorithms/ngram.md"
ROOT = FIXTURES / "rules_more"


# --- ALG-NGRAM-3 / ALG-NGRAM-5: propose on the page's worked examples ------------------------------------------

# case name -> (K, n_min, n_max, context, proposal, why); tokens are symbols, relabeled to verifier ids
NGRAM_EXAMPLES = {
    "longest-first-earliest": (3, 1, 2, [1, 2, 7, 8, 9, 1, 2, 3, 4, 1, 2], [7, 8, 9],
                               "n = 2 first, suffix [1,2], earliest match at i = 0"),
    "overlapping-match": (4, 1, 4, [5, 6, 5, 6, 5, 6], [5, 6], "n = 4, the match at i = 0 overlaps the suffix; two "
                          "tokens left before the context ends (the page's [5,5,5,5] with period 2, since no token is "
                          "the verifier's greedy successor of itself; a lookup that skips overlapping matches "
                          "proposes [5,6,5,6] from n = 2)"),
    "suffix-only": (2, 1, 2, [1, 2, 3], [], "[2,3] and [3] occur only as the suffix itself: empty"),
    "shorter-than-n-min": (2, 4, 5, [1, 2, 1], [], "a context of 3 tokens, shorter than n_min 4: empty (n = 1 "
                                                    "would match)"),
    "no-length-from-n-min": (2, 2, 3, [1, 2, 3, 1], [], "neither n = 3 nor n = 2 matches: empty (n = 1, below "
                                                        "n_min, would match)"),
}


def ngram_path(n_min: int, n_max: int) -> str:
    return (ROOT / f"ngram-{n_min}-{n_max}").as_posix()


def write_fixtures(suite: Path) -> None:
    """One weightless n-gram checkpoint per (prompt_lookup_min, prompt_lookup_max) of the examples, bound to the
    bigram verifier's dimensions (num_head32)."""
    for n_min, n_max in sorted({(e[1], e[2]) for e in NGRAM_EXAMPLES.values()}):
        config = num_head32.shaped("ngram", {"prompt_lookup_min": n_min, "prompt_lookup_max": n_max}, None)
        save(config, {}, suite / ngram_path(n_min, n_max))


def relabeled(symbols: list[int], proposal: list[int], seed: int) -> list[int]:
    """The context `symbols` and its `proposal`, each distinct symbol replaced by a distinct verifier id: the
    context's last by the bigram verifier's greedy successor of the one before it (num_accept: succ), so the context
    ends in the verifier's greedy token (PROTOCOL.md 3.3); the others drawn with `seed`."""
    *_, before, last = symbols
    ids = {before: num_accept.SUBSET[0], last: num_accept.SUCC[num_accept.SUBSET[0]]}
    free = [t for t in torch.randperm(num_accept.V, generator=torch.Generator().manual_seed(seed)).tolist()
            if t not in ids.values()]
    for s in symbols:
        ids.setdefault(s, free.pop(0))
    return [ids[s] for s in symbols + proposal]


def ngram_cases(suite: Path) -> list[NumericsCase]:
    """Each example relabeled to verifier ids, on the bigram verifier (whose greedy token depends on the last
    token alone), checked to propose what the page's table says."""
    cases = []
    for seed, (name, (k, n_min, n_max, symbols, proposal, why)) in enumerate(NGRAM_EXAMPLES.items(), start=530):
        checkpoint = ngram_path(n_min, n_max)
        verifier, draft = models(suite, checkpoint, num_accept.VERIFIER)
        tokens = relabeled(symbols, proposal, seed)
        ctx, inputs, margin = context(verifier, draft, torch.tensor(tokens[:len(symbols) - 1]))
        assert ctx.tokens == tokens[:len(symbols)] and margin >= MIN_TOP2_MARGIN, (name, ctx.tokens, margin)
        drafted = draft.propose(ctx, k, Picker()).tokens
        assert drafted.tolist() == tokens[len(symbols):], (name, drafted)
        cases.append(NumericsCase(
            f"num.propose.ngram.{name}-k{k}", f"n-gram lookup, K {k}, n_min {n_min}, n_max {n_max}, context "
            f"{ctx.tokens}: {why}", [f"{NGRAM}#ALG-NGRAM-3", f"{NGRAM}#ALG-NGRAM-5"], "propose", checkpoint,
            num_accept.VERIFIER, {"k": k}, inputs, {"draft_tokens": drafted}, {"draft_tokens": EXACT},
            {"min_top2_margin": rounded(margin), "symbols": symbols}))
    return cases


def cases(suite: Path) -> list[NumericsCase]:
    return ngram_cases(suite)
