"""Numerics cases for MUST rules that only one path (or no case) reached before (issue 23, rule coverage map):

- ALG-NGRAM-3 / ALG-NGRAM-5: `propose` on the worked examples of the n-gram page, each with its own
  prompt_lookup_min and prompt_lookup_max, plus a context no length from n_min up matches;
- refusals (PROTOCOL.md 3.4) of drafts beside the numerics verifier (H 16, V 64, N 6): a checkpoint that compat
  validation finds in error (GEN-1, `refused.invalid`), and drafts that validate but cannot run with it
  (`refused.draft`): DFlash `layer_types` (ALG-DFLASH-3), an eagle draft of two layers or another layer class
  (ALG-EAGLE-1) or of another width (ALG-EAGLE-3), an eagle3 draft without its embedding narrower than the verifier
  (ALG-EAGLE3-9), an independent draft of another vocabulary unstated in its binding (ALG-INDEPENDENT-2), and
  bindings that state another verifier (CFG-8's runtime paragraph); beside them, drafts that must run: an eagle3
  draft without its embedding that reads the verifier's (ALG-EAGLE3-9's other half), and DFlash blocks with
  sample_from_anchor, where all B slots predict (ALG-DFLASH-2: K = B runs, B = 1 runs, K = B + 1 is refused).

Each case asserts the proposal, validation result or refusal its description promises, so a generator change that
loses the point of a case fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from conformance.generators import num_accept, num_fixtures, num_head32, numerics, variants
from conformance.generators.common import write_json
from conformance.generators.num_fixtures import FIXTURES
from conformance.generators.numerics import (
    COMPUTE_DTYPE,
    EXACT,
    MIN_TOP2_MARGIN,
    NumericsCase,
    context,
    models,
    proposal_cases,
    rounded,
    stored,
)
from specfmt import save, validate
from specfmt.findings import Refused, ValidationError
from specfmt.proposal import Picker
from specfmt.runtime import load_draft
from specfmt.safetensors_file import write_tensors
from specfmt.verifier import Verifier

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
    write_refusal_fixtures(suite)


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


# --- refusals ------------------------------------------------------------------------------------------------


def eagle3_wide(config: dict, h_t: int) -> None:
    """An eagle3 draft for a verifier of hidden size h_t: target_hidden_size and the binding's hidden_size."""
    config.update(target_hidden_size=h_t)
    config["speculators_config"]["verifier"]["hidden_size"] = h_t


def layer(**changes) -> Callable[[dict], None]:
    return lambda config: config["transformer_layer_config"].update(changes)


def top(**changes) -> Callable[[dict], None]:
    return lambda config: config.update(changes)


def binding(**changes) -> Callable[[dict], None]:
    return lambda config: config["speculators_config"]["verifier"].update(changes)


def unbound(field: str) -> Callable[[dict], None]:
    return lambda config: config["speculators_config"]["verifier"].pop(field)


def both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        for e in edits:
            e(config)
    return edit


# name -> (fixture algorithm, config edit, tensor edit, rules, refusal code, what)
REFUSALS = {
    "eagle3-fc-width": ("eagle3", None, lambda t: t.update({"fc.weight": t["fc.weight"][:, :32]}),
                        ["spec/index.md#GEN-1", "spec/algorithms/eagle3.md#ALG-EAGLE3-6"], "refused.invalid",
                        "an eagle3 checkpoint whose fc.weight is [16, 32], not [H, 3 * H_t] (layout.fc_width)"),
    "eagle3-lm-head-missing": ("eagle3", None, lambda t: t.pop("lm_head.weight"),
                               ["spec/index.md#GEN-1", "spec/algorithms/eagle3.md#ALG-EAGLE3-9"], "refused.invalid",
                               "an eagle3 checkpoint without lm_head.weight (layout.missing)"),
    "medusa-block-shape": ("medusa", None, lambda t: t.update({"blocks.0.layers.0.weight": t["blocks.0.layers.0.weight"]
                                                               [:, :8]}),
                           ["spec/index.md#GEN-1", "spec/algorithms/medusa.md#ALG-MEDUSA-4"], "refused.invalid",
                           "a medusa checkpoint whose first block is [16, 8], not [H, H] (layout.shape)"),
    "dflash-layer-types-count": ("dflash", layer(num_hidden_layers=1, layer_types=["full_attention"] * 2), None,
                                 ["spec/algorithms/dflash.md#ALG-DFLASH-3"], "refused.draft",
                                 "a DFlash draft of 1 layer whose layer_types has 2 entries"),
    "dflash-layer-types-unknown": ("dflash", layer(num_hidden_layers=1, layer_types=["chunked_attention"]), None,
                                   ["spec/algorithms/dflash.md#ALG-DFLASH-3"], "refused.draft",
                                   "a DFlash draft whose layer_types names chunked_attention"),
    "dflash-sliding-without-window": ("dflash", layer(num_hidden_layers=1, layer_types=["sliding_attention"],
                                                      sliding_window=None), None,
                                      ["spec/algorithms/dflash.md#ALG-DFLASH-3"], "refused.draft",
                                      "a DFlash draft with a sliding_attention layer and sliding_window null"),
    "eagle-two-layers": ("eagle", layer(num_hidden_layers=2), None, ["spec/algorithms/eagle.md#ALG-EAGLE-1"],
                         "refused.draft", "an eagle draft stating num_hidden_layers 2 (its layout binds one layer)"),
    "eagle-mistral-layer": ("eagle", top(transformer_layer_architecture="MistralDecoderLayer"), None,
                            ["spec/algorithms/eagle.md#ALG-EAGLE-1"], "refused.draft",
                            "an eagle draft whose transformer_layer_architecture is MistralDecoderLayer"),
    "eagle-hidden-24": ("eagle", layer(hidden_size=24), None, ["spec/algorithms/eagle.md#ALG-EAGLE-3"],
                        "refused.draft", "an eagle draft of hidden size 24 beside the 16-wide verifier its binding "
                        "names (validation does not compare them)"),
    "eagle3-no-embedding-24-on-16": ("eagle3", both(layer(hidden_size=24), top(target_hidden_size=16)),
                                     lambda t: t.pop("embed_tokens.weight"),
                                     ["spec/algorithms/eagle3.md#ALG-EAGLE3-9"], "refused.draft",
                                     "an eagle3 draft of hidden size 24 without embed_tokens.weight: the verifier's "
                                     "embedding it would read is 16 wide"),
    "independent-vocab-128-unbound": ("independent", both(layer(vocab_size=128, num_hidden_layers=1),
                                                          unbound("vocab_size")), None,
                                      ["spec/algorithms/independent.md#ALG-INDEPENDENT-2"], "refused.draft",
                                      "an independent draft of vocabulary 128 whose binding states no vocab_size, "
                                      "beside the verifier of vocabulary 64"),
    "eagle3-bound-to-vocab-128": ("eagle3", both(layer(vocab_size=128), binding(vocab_size=128)), None,
                                  ["spec/config.md#CFG-8"], "refused.draft",
                                  "an eagle3 draft whose binding states vocab_size 128 beside a verifier of 64"),
    "eagle3-bound-to-hidden-24": ("eagle3", lambda c: eagle3_wide(c, 24), None, ["spec/config.md#CFG-8"],
                                  "refused.draft", "an eagle3 draft whose binding and target_hidden_size state "
                                  "hidden size 24 beside a verifier of 16"),
    "eagle3-aux-id-7": ("eagle3", both(top(eagle_aux_hidden_state_layer_ids=[1, 3, 7]), unbound("num_hidden_layers")),
                        None, ["spec/config.md#CFG-8", "spec/config.md#CFG-9"], "refused.draft",
                        "an eagle3 draft reading aux id 7 whose binding states no num_hidden_layers, beside a "
                        "verifier of 6 layers (config.aux_layer_range)"),
}


def refusal_path(name: str) -> str:
    return (ROOT / f"refuse-{name}").as_posix()


def refused_fixture(suite: Path, name: str) -> None:
    """config.json and model.safetensors as the edits leave them, written without save(), which validates strict; the
    weights are zeros (a runtime refuses the draft before it reads them), which a download compresses away."""
    algorithm, edit_config, edit_tensors, _, code, _ = REFUSALS[name]
    config = num_fixtures.draft_config(algorithm)
    if edit_config is not None:
        edit_config(config)
    tensors = {k: torch.zeros_like(t, dtype=torch.bfloat16) if t.is_floating_point() else t  # never read: refused
               for k, t in variants.tensors_for(config).items()}
    if edit_tensors is not None:
        edit_tensors(tensors)
    write_json(suite / refusal_path(name) / "config.json", config)
    write_tensors(suite / refusal_path(name) / "model.safetensors", tensors, {"format": "pt"})
    errors = {f.code for f in validate(suite / refusal_path(name), "compat").errors}
    assert bool(errors) == (code == "refused.invalid"), (name, errors)  # GEN-1's fixtures alone fail validation


def refusal_cases(suite: Path) -> list[NumericsCase]:
    verifier = Verifier.from_pretrained(suite / num_fixtures.VERIFIER, dtype=COMPUTE_DTYPE)
    tokens = numerics.prompt(0, 2)  # 2 positions: a draft never reads them before refusing
    out = verifier.forward(tokens, (1, 3, 5))  # aux states of eagle3's ids
    inputs = {"token_ids": torch.cat([tokens, out.logits[-1].argmax().reshape(1)]), "aux": stored(out.aux),
              "last": stored(out.last), "normed": stored(out.normed)}
    cases = []
    for name, (_, _, _, rules, code, what) in REFUSALS.items():
        checkpoint = refusal_path(name)
        try:
            load_draft(suite / checkpoint, verifier)
        except (Refused, ValidationError) as e:
            assert getattr(e, "refusal", None) == code, (name, str(e))
        else:
            raise AssertionError(f"{name}: the reference loads it")
        cases.append(NumericsCase(f"num.refuse.{name}", f"{what}: refused ({code})", rules, "propose", checkpoint,
                                  num_fixtures.VERIFIER, {"k": 3}, inputs, {}, {}, refusal=code))
    return cases


# name -> (fixture algorithm, config edit, tensor edit, k, rule, what): drafts that run, beside the refusals
RUNNING = {
    "eagle3-verifier-embedding": ("eagle3", None, lambda t: t.pop("embed_tokens.weight"), 3,
                                  "spec/algorithms/eagle3.md#ALG-EAGLE3-9", "without embed_tokens.weight, reading "
                                  "the verifier's input embedding (H = H_t = 16)"),
    "dflash-anchor": ("dflash", top(block_size=4, sample_from_anchor=True), None, 4,
                      "spec/algorithms/dflash.md#ALG-DFLASH-2", "block_size 4 with sample_from_anchor: all 4 slots "
                      "predict, so K 4 runs"),
    "dflash-block-1-anchor": ("dflash", top(block_size=1, sample_from_anchor=True), None, 1,
                              "spec/algorithms/dflash.md#ALG-DFLASH-2", "block_size 1 with sample_from_anchor: "
                              "the anchor's slot predicts, so the draft runs"),
}


def write_running_fixtures(suite: Path) -> None:
    for seed, (name, (algorithm, edit_config, edit_tensors, *_)) in enumerate(RUNNING.items(), start=560):
        config = num_fixtures.draft_config(algorithm)
        if edit_config is not None:
            edit_config(config)
        tensors = num_fixtures.weights(variants.tensors_for(config), seed)
        if edit_tensors is not None:
            edit_tensors(tensors)
        save(config, tensors, suite / ROOT / name)


def running_cases(suite: Path) -> list[NumericsCase]:
    """propose and draft_forward on each running draft; K one above dflash-anchor's 4 slots is refused."""
    out = []
    for name, (algorithm, _, _, k, rule, what) in RUNNING.items():
        for case in proposal_cases(suite, algorithm, k=k, checkpoint=(ROOT / name).as_posix(),
                                   name=f"rules-more.{name}"):
            case.spec, case.description = [rule, *case.spec], f"{case.description}: {what}"
            out.append(case)
    refused = next(c for c in out if c.id == "num.propose.rules-more.dflash-anchor-k4")
    out.append(NumericsCase("num.refuse.dflash-anchor-k5", "block_size 4 with sample_from_anchor: K 5 above its 4 "
                            "predicting slots, refused (refused.k_above_limit)",
                            ["spec/algorithms/dflash.md#ALG-DFLASH-2"], "propose", refused.checkpoint,
                            refused.verifier, {"k": 5}, refused.inputs, {}, {}, refusal="refused.k_above_limit"))
    return out


def write_refusal_fixtures(suite: Path) -> None:
    for name in REFUSALS:
        refused_fixture(suite, name)
    write_running_fixtures(suite)


def cases(suite: Path) -> list[NumericsCase]:
    return ngram_cases(suite) + refusal_cases(suite) + running_cases(suite)
