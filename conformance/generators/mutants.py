"""Cases that kill mutants of the reference which the rest of the suite let live (`make mutation`, issue 23).

benchmarks/mutation.py mutates the reference's validator, layout binding, expression language and verification and
grades each mutant with this suite alone; a mutant that survives is a behaviour the suite does not pin. Each case
here pins one such behaviour, stated by the rule its `spec` names, so that a wrong implementation fails it as the
mutant does. Mutants that no input can tell apart are declared with their reason in
benchmarks/mutation_equivalents.json instead.

Verification cases sit exactly on a boundary on purpose (a tie, a uniform of 0, a threshold between two float32
values): the values are exact in binary, so every language computes the same comparison, and the boundary is the
rule under test. Their golden says which boundary (`exact_boundary`) instead of a margin from it.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Callable
from pathlib import Path

import torch

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, entries, in_bfloat16, write_config
from conformance.generators.ckpt_bytes import EXTRA, SHAPE, SHARDS, _sharded
from conformance.generators.ckpt_layout import EAGLE3, TINY, _swap
from conformance.generators.numerics import EXACT, FLOAT32, NumericsCase, rounded
from specfmt.safetensors_file import write_sparse
from specfmt.verification import process_logits, verify_sampling, verify_top_k

VERDICT = {"accepted": EXACT, "next_token": EXACT}


def verdict(v) -> dict[str, torch.Tensor]:
    return {"accepted": torch.tensor([v.accepted]), "next_token": torch.tensor([v.next_token])}


def sampling_case(name: str, what: str, golden: dict, drafts: list[int], q: list[list[float]],
                  p: list[list[float]], uniforms: list[float], final: float, rules: list[str]) -> NumericsCase:
    inputs = {"draft_tokens": torch.tensor(drafts), "q": torch.tensor(q), "p": torch.tensor(p),
              "uniforms": torch.tensor(uniforms, dtype=torch.float64),
              "final_uniform": torch.tensor([final], dtype=torch.float64)}
    v = verify_sampling(inputs["draft_tokens"], inputs["q"], inputs["p"], inputs["uniforms"], final)
    return NumericsCase(f"num.verify-sampling.{name}", f"rejection sampling: {what}",
                        [f"spec/verification.md#{r}" for r in rules], "verify_sampling", None, None, {}, inputs,
                        verdict(v), VERDICT, golden)


def sampling_cases() -> list[NumericsCase]:
    """VRF-2 and VRF-5 at their boundaries, V = 4, K = 1 (values exact in float32 and float64)."""
    residual_zero = "a rejected token of q = 0 and p = 0 where p equals q elsewhere: the residual max(p - q, 0) is " \
        "all zero, so the token is drawn from p"
    return [
        sampling_case("tie-rejects", "u * q(x) == p(x) rejects the draft token (0.5 * 0.5 == 0.25)",
                      {"exact_boundary": "uniforms[0] * q[0, x] equals p[0, x]"},
                      [0], [[0.5, 0.5, 0, 0]], [[0.25] * 4, [0.25] * 4], [0.5], 0.25, ["VRF-5"]),
        sampling_case("zero-probability-never-drawn", "a final uniform of 0 draws the first token of nonzero "
                      "probability, never the zero-probability token before it",
                      {"exact_boundary": "final_uniform is 0, the first CDF step"},
                      [1], [[0, 1, 0, 0]], [[0, 1, 0, 0], [0, 0.5, 0.5, 0]], [0.5], 0.0, ["VRF-2", "VRF-5"]),
        sampling_case("residual-zero-draws-from-p", residual_zero,
                      {"exact_boundary": "q[0, x] and p[0, x] are both 0"},
                      [0], [[0, 0.5, 0.5, 0]], [[0, 0.5, 0.5, 0]] * 2, [0.5], 0.6, ["VRF-5", "VRF-2"]),
        sampling_case("residual-last-token", "the correction is drawn from the unnormalized residual scaled by its "
                      "own total, and can be the last token of the vocabulary", {"min_uniform_margin": 0.1},
                      [0], [[0.5, 0.5, 0, 0]], [[0.25] * 4] * 2, [0.9], 0.9, ["VRF-5", "VRF-2"]),
        sampling_case("float64-threshold", "u * cdf[V-1] is a float64 product: u = 0.25 - 2^-30 stays below the "
                      "first CDF step 0.25, which the product rounded to float32 reaches",
                      {"exact_boundary": "the threshold lies 2^-30 below a CDF step"},
                      [1], [[0, 1, 0, 0]], [[0, 1, 0, 0], [0.25, 0.75, 0, 0]], [0.5], 0.25 - 2 ** -30, ["VRF-2"]),
    ]


def top_k_case(name: str, what: str, drafts: list[int], logits: list[list[float]], accept_k: int,
               tolerance: float) -> NumericsCase:
    inputs = {"draft_tokens": torch.tensor(drafts), "target_logits": torch.tensor(logits)}
    v = verify_top_k(inputs["draft_tokens"], inputs["target_logits"], accept_k, tolerance)
    top2 = inputs["target_logits"].topk(2, -1).values
    return NumericsCase(f"num.verify-top-k.{name}", f"the speculators top-k rule: {what}",
                        ["spec/verification.md#VRF-4"], "verify_top_k", None, None,
                        {"accept_k": accept_k, "accept_tolerance": tolerance}, inputs, verdict(v), VERDICT,
                        {"min_top2_margin": rounded(float((top2[:, 0] - top2[:, 1]).min()))})


def top_k_cases() -> list[NumericsCase]:
    """VRF-4 with V = 4, K = 3; integer logits, so every log-probability gap is an integer, at least 0.5 from each
    `tau`, and each row's argmax is 1 above the runner-up."""
    rows = [[4, 3, 2, 0], [0, 4, 3, 1], [1, 0, 4, 3], [2, 1, 0, 4]]
    return [
        top_k_case("second-best-accepted", "k = 2 accepts each row's second most likely token, then stops at a "
                   "third; the next token is that row's argmax", [1, 2, 0], rows, 2, 5.0),
        top_k_case("tolerance-rejects", "k = 2 with tau = 0.5: a second-best token 1 nat below the top is refused",
                   [0, 2], rows, 2, 0.5),
        top_k_case("tie-with-kth-accepted", "a token tied with the k-th most likely is accepted (fewer than k "
                   "tokens are strictly more likely)", [2, 3, 1], [[3, 1, 1, 0], [3, 1, 0, 1], [3, 2, 2, 0],
                                                                  [0, 1, 2, 3]], 2, 5.0),
        top_k_case("k1-is-greedy", "k = 1 accepts only the argmax, for any tau", [0, 1, 3],
                   rows, 1, 100.0),
        top_k_case("first-row-rejects", "row 0 already rejects (rank 2 with k = 2): nothing accepted, the next token "
                   "is row 0's argmax", [3], [[0, 3, 2, 1], [0, 1, 2, 3]], 2, 5.0),
    ]


def distribution_case(name: str, what: str, logits: list[list[float]], temperature: float, top_k: int,
                      top_p: float) -> NumericsCase:
    x = torch.tensor(logits)
    probs = process_logits(x.double(), temperature, top_k, top_p).float()  # float64, stored in float32
    assert torch.equal((probs > 0), process_logits(x, temperature, top_k, top_p) > 0), name  # same support
    return NumericsCase(f"num.process-logits.{name}", f"the target distribution of VRF-1: {what}",
                        ["spec/verification.md#VRF-1"], "process_logits", None, None,
                        {"temperature": temperature, "top_k": top_k, "top_p": top_p}, {"logits": x},
                        {"probs": probs}, {"probs": FLOAT32}, {"min_mass_margin": mass_margin(x, temperature, top_p)})


def mass_margin(x: torch.Tensor, temperature: float, top_p: float) -> float:
    """How far from top_p the mass before each sorted entry lies (1 without top_p): what keeps the kept set the same
    under float32 rounding."""
    if top_p >= 1.0:
        return 1.0
    s = torch.sort(x.double() / temperature, -1, descending=True).values
    probs = torch.softmax(s, -1)
    return rounded(float(((probs.cumsum(-1) - probs) - top_p).abs().min()))


def distribution_cases() -> list[NumericsCase]:
    """VRF-1 on two rows of V = 6 logits: temperature, top-k (a tie at the k-th value kept), top-p (the entry that
    reaches top_p kept, those after it dropped), all three in order."""
    rows = [[2.0, 1.0, 0.5, 0.0, -1.0, 3.0], [0.0, 0.0, 1.0, 2.0, 2.0, -3.0]]
    return [
        distribution_case("temperature", "logits divided by T = 2, then softmax over each row", rows, 2.0, 0, 1.0),
        distribution_case("top-k", "top_k = 4 keeps the 4 largest of each row and every value tied with the "
                          "fourth (the second row keeps five)", rows, 1.0, 4, 1.0),
        distribution_case("top-p", "top_p = 0.8 keeps the smallest prefix of the sorted row whose mass reaches "
                          "0.8", rows, 1.0, 0, 0.8),
        distribution_case("top-k-1", "top_k = 1 keeps the largest value of each row and every value tied with it",
                          rows, 1.0, 1, 1.0),
        distribution_case("temperature-top-k-top-p", "T = 0.5, top_k = 4, then top_p = 0.9, in that order", rows,
                          0.5, 4, 0.9),
    ]


def numerics_cases() -> list[NumericsCase]:
    return sampling_cases() + top_k_cases() + distribution_cases()


# --- the validator: checkpoint cases ------------------------------------------------------------------------------

SFT_5 = ("spec/layout.md#SFT-5",)


def _first_shard_gains(entry: dict | None):
    """A build: the two-shard eagle3 checkpoint whose index also places EXTRA in the first shard (sorted by name), and
    whose first shard's header holds `entry` for it (None: no entry). The second shard stays whole, so a validator
    that remembers only the last shard it read (which headers parsed, which entries were malformed) misjudges the
    first one."""
    def edit(path: Path, index: dict) -> None:
        index["weight_map"][EXTRA] = SHARDS[0]
        if entry is not None:
            raw = (path / SHARDS[0]).read_bytes()
            n = struct.unpack("<Q", raw[:8])[0]
            head = {**json.loads(raw[8:8 + n]), EXTRA: entry}
            text = json.dumps(head, separators=(",", ":")).encode()
            (path / SHARDS[0]).write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    return _sharded(edit)


def _edited(config: dict, edit: Callable[[dict], None], rows=lambda e: e, tensors_edited: bool = False):
    """A build: `config` with `edit` applied, and a header-only model.safetensors of `rows(entries(...))`: the tensors
    of `config` as it was before the edit, or after it with `tensors_edited` (none for ngram)."""
    def build(path: Path) -> None:
        changed = copy.deepcopy(config)
        edit(changed)
        write_config(path, changed)
        if config["speculators_model_type"] != "ngram":
            write_sparse(path / "model.safetensors", rows(entries(changed if tensors_edited else config)))
    return build


DROP = object()
VERIFIER = ("speculators_config", "verifier")


def _set(*changes: tuple[tuple[str, ...], object]) -> Callable[[dict], None]:
    """An edit: each (path, value) set in the config; a value of DROP deletes the key."""
    def edit(config: dict) -> None:
        for path, value in changes:
            node = config
            for key in path[:-1]:
                node = node[key]
            if value is DROP:
                del node[path[-1]]
            else:
                node[path[-1]] = value
    return edit


def config_cases() -> list[CheckpointCase]:
    """The config findings that only schema-level cases reached, now in a checkpoint, where a finding's file is graded
    too; and two boundaries of the config checks (CFG-13's equal bounds, LAY-4's gap that starts at layer 0)."""
    hazards, config = "spec/hazards.md", "spec/config.md"
    return [
        CheckpointCase("ckpt.config.aux-layer-ids-order", "eagle3 whose eagle_aux_hidden_state_layer_ids [1, 5, 3] are "
                       "not increasing: hazard.aux_layer_ids_order in config.json", "compat",
                       _edited(EAGLE3, _set((("eagle_aux_hidden_state_layer_ids",), [1, 5, 3]))),
                       "hazard.aux_layer_ids_order", (f"{config}#CFG-9", f"{hazards}#hazard.aux_layer_ids_order")),
        CheckpointCase("ckpt.config.exclusive", "eagle3 with norm_before_fc and fc_norm both true: config.exclusive "
                       "in config.json", "compat",
                       _edited(EAGLE3, _set((("norm_before_fc",), True), (("fc_norm",), True)), tensors_edited=True),
                       "config.exclusive", (f"{config}#CFG-12", "spec/algorithms/eagle3.md#ALG-EAGLE3-3")),
        CheckpointCase("ckpt.config.proposal-type-removed", "eagle3 whose only proposal method is sampling: "
                       "hazard.proposal_type_removed in config.json", "compat",
                       _edited(EAGLE3, _set((("speculators_config", "proposal_methods"),
                                             [{"proposal_type": "sampling", "speculative_tokens": 3}]),
                                            (("speculators_config", "default_proposal_method"), "sampling"))),
                       "hazard.proposal_type_removed", (f"{hazards}#hazard.proposal_type_removed",)),
        CheckpointCase("ckpt.medusa.verifier-fact-absent", "medusa whose verifier binding lacks vocab_size, which its "
                       "layout reads: config.required in config.json under compat too", "compat",
                       _edited(TINY, _set(((*VERIFIER, "vocab_size"), DROP))), "config.required",
                       (f"{config}#CFG-8",)),
        CheckpointCase("ckpt.mtp.verifier-mismatch", "mtp whose verifier binding states another hidden_size and "
                       "vocab_size than its transformer_layer_config: config.verifier_mismatch at each of the two",
                       "compat", _edited(variants.config_of("mtp"), _set(((*VERIFIER, "hidden_size"), 48),
                                                                          ((*VERIFIER, "vocab_size"), 256))),
                       "config.verifier_mismatch", (f"{config}#CFG-8",)),
        CheckpointCase("ckpt.ngram.prompt-lookup-equal", "ngram with prompt_lookup_min equal to prompt_lookup_max "
                       "(valid: the bound is inclusive)", "compat",
                       _edited(variants.config_of("ngram"), _set((("prompt_lookup_min",), 3))), None,
                       (f"{config}#CFG-13",)),
        CheckpointCase("ckpt.hazard.dtype-mismatch.torch-dtype", "a float32 tensor in a bfloat16 eagle3 that declares "
                       "its dtype as torch_dtype alone (transformers 4): hazard.dtype_mismatch", "compat",
                       _edited(EAGLE3, _set((("dtype",), DROP), (("torch_dtype",), "bfloat16")),
                               lambda e: _swap(e, "fc.weight", "F32")),
                       "hazard.dtype_mismatch", (f"{config}#CFG-14", f"{hazards}#hazard.dtype_mismatch")),
        CheckpointCase("ckpt.layout.every-layer-absent", "a two-layer independent draft that stores neither layer: "
                       "every layer tensor is layout.missing, and no hazard.layers_missing (no stored prefix)",
                       "compat", _edited(in_bfloat16(variants.config_of("independent")), lambda c: None,
                               lambda e: [r for r in e if not r[0].startswith("model.layers.")]),
                       "layout.missing", ("spec/layout.md#LAY-4", f"{hazards}#hazard.layers_missing")),
    ]


def checkpoint_cases() -> list[CheckpointCase]:
    """SFT-5 in the first of two shards: the rules hold for every shard read, not the last one alone; and
    config_cases()."""
    return [
        CheckpointCase("ckpt.index.listed-absent-first-shard", "weight_map places a tensor in the first of two shards, "
                       "whose header (read, well formed) lacks it: index.mismatch at its weight_map entry, though the "
                       "last shard read is whole", "compat", _first_shard_gains(None), "index.mismatch", SFT_5),
        CheckpointCase("ckpt.index.listed-malformed-first-shard", "weight_map places a tensor in the first of two "
                       "shards, whose entry for it lacks data_offsets: header.entry only; the malformed entry counts "
                       "as stored though the last shard read has no malformed entry", "compat",
                       _first_shard_gains({"dtype": "F32", "shape": SHAPE}), "header.entry", SFT_5),
    ] + config_cases()
