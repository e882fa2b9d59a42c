"""The reference side of the vLLM checks: specfmt's proposer replayed on every context vLLM proposed from.

A vLLM proposal record says: the verifier has run `ctx_len` positions of the sequence, its next token
is `next_token`, and the draft proposed `draft` (K verifier ids). The reference runs the same
verifier over the same positions and proposes K tokens with the same checkpoint. Depths whose reference
top-1/top-2 draft-logit margin is below NEAR_TIE, and every depth after one, are skipped and counted:
there float32 rounding may legitimately pick either token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from specfmt.checkpoint import load
from specfmt.defaults import resolve
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import build_draft, on_verifier
from specfmt.verifier import Verifier

NEAR_TIE = 1e-4  # nats; the smallest margin vLLM's CPU path was seen to resolve correctly is 3.6e-4


@dataclass
class ProposalCheck:
    compared: int = 0  # (record, depth) pairs compared
    equal: int = 0
    skipped: int = 0  # near ties, and the depths after them
    bad_records: int = 0  # records whose next token does not continue the output: a moved hook
    beyond_output: int = 0  # each request's last proposal may start past max_tokens; it is never verified
    mismatches: list[dict] = field(default_factory=list)

    @property
    def all_equal(self) -> bool:
        return self.compared > 0 and self.equal == self.compared and self.bad_records == 0

    def __str__(self) -> str:
        return f"{self.equal}/{self.compared} ({self.skipped} near-tie skipped)"


def reference_draft(draft_dir: Path, verifier: Verifier, **changes):
    """The checkpoint at `draft_dir` as specfmt reads it, with config fields overridden by `changes`
    (the negative controls: a deliberately wrong reading)."""
    config, tensors = load(draft_dir)
    return build_draft(dict(resolve(config), **changes), on_verifier(tensors, verifier), verifier)


@torch.inference_mode()
def propose_at(verifier: Verifier, draft, tokens: list[int], k: int) -> tuple[list[int], list[float]]:
    """K reference proposals after `tokens` (the last one pending), with each depth's top-2 margin."""
    verifier.truncate(0)
    out = verifier.forward(torch.tensor(tokens[:-1]), draft.aux_ids)
    draft.reset()
    picker = RecordingPicker()
    drafted = draft.propose(Context(list(tokens), out.aux, out.last, out.normed), k, picker)
    margins = [float(top[0] - top[1]) for top in (row.topk(2).values for row in picker.logits)]
    return drafted.tokens.tolist(), margins


def compare_proposals(verifier: Verifier, draft, prompts: list[list[int]], outputs: list[list[int]],
                      records: list[list[dict]], k: int) -> ProposalCheck:
    check = ProposalCheck()
    for prompt, output, per_prompt in zip(prompts, outputs, records, strict=True):
        sequence = prompt + output
        for i, record in enumerate(per_prompt):
            n = record["ctx_len"]
            if n >= len(sequence) and i == len(per_prompt) - 1:
                check.beyond_output += 1
                continue
            if n >= len(sequence) or sequence[n] != record["next_token"]:
                check.bad_records += 1
                continue
            ours, margins = propose_at(verifier, draft, sequence[:n + 1], k)
            for depth, (theirs_id, our_id, margin) in enumerate(zip(record["draft"], ours, margins, strict=True)):
                if margin < NEAR_TIE:
                    check.skipped += k - depth
                    break
                check.compared += 1
                if theirs_id == our_id:
                    check.equal += 1
                else:
                    check.mismatches.append({"ctx_len": n, "depth": depth, "vllm": theirs_id, "reference": our_id})
                    break  # later depths read different inputs: not compared
    return check


def read_dflash_as_vllm_0_32(draft) -> None:
    """Make a reference DFlash draft read its checkpoint the way vLLM 0.32's CPU path does (two
    departures from spec/algorithms/dflash.md): with sliding_window_non_causal false the block is causal
    in every layer, and every layer's context keys are normed with layer 0's k_norm weight."""
    from specfmt.algorithms import dflash

    def causal_mask(kind: str, n: int) -> torch.Tensor:
        query = torch.arange(n, n + draft.block_size)[:, None]  # [B, 1]
        key = torch.arange(n + draft.block_size)[None, :]  # [1, n+B]
        return (key < n) | (key <= query)

    layer0_k_norm = draft.layers[0][0]["k_norm"]
    real_context_kv = dflash.context_kv

    def extend_context(ctx: Context) -> int:
        dflash.context_kv = lambda c, w, *rest: real_context_kv(c, dict(w, k_norm=layer0_k_norm), *rest)
        try:
            return dflash.DFlash.extend_context(draft, ctx)
        finally:
            dflash.context_kv = real_context_kv

    if not draft.non_causal:
        draft.mask = causal_mask
    draft.extend_context = extend_context
