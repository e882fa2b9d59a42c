"""generate(): speculative decoding with a verifier and a draft, with per-step statistics.

Spec: spec/verification.md#VRF-6
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from specfmt.proposal import Context, Draft, Proposal
from specfmt.verifier import Verifier


@dataclass
class Stats:
    """Draft tokens proposed and accepted per verifier step."""

    k: int
    accepted: list[int] = field(default_factory=list)
    drafted: list[int] = field(default_factory=list)

    @property
    def tau(self) -> float:
        """Mean tokens committed per verifier step (accepted drafts plus the verifier's own)."""
        return sum(a + 1 for a in self.accepted) / max(len(self.accepted), 1)

    @property
    def acceptance_by_position(self) -> list[float]:
        """Fraction of steps whose draft token at position j was accepted."""
        steps = max(len(self.accepted), 1)
        return [sum(a > j for a in self.accepted) / steps for j in range(self.k)]

    def counters(self) -> dict[str, int | list[int]]:
        """The engines' acceptance counters (vLLM's spec_decode_num_drafts and
        spec_decode_num_accepted_tokens_per_pos): steps that proposed at least one token, and for each
        depth j how many steps accepted the draft token at j. Spec: spec/verification.md#VRF-6"""
        return {"drafts": sum(d > 0 for d in self.drafted),
                "accepted_per_position": [sum(a > j for a in self.accepted) for j in range(self.k)]}

    def to_json(self) -> dict:
        return {"k": self.k, "steps": len(self.accepted), "accepted_per_step": self.accepted, "tau": self.tau,
                "acceptance_by_position": self.acceptance_by_position}


@dataclass
class Generation:
    tokens: list[int]
    stats: Stats


@torch.inference_mode()
def generate(verifier: Verifier, draft: Draft, prompt_ids: list[int], max_new_tokens: int, proposal: Proposal,
             seed: int = 0, eos_token_id: int | None = None,
             progress: Callable[[int], None] | None = None) -> Generation:
    """Decode up to `max_new_tokens` tokens after `prompt_ids`, K = proposal.speculative_tokens per step.

    Each step: the draft proposes K tokens; the verifier runs the pending token and the K drafts in
    one pass; the proposal method accepts a prefix and picks the next token; the verifier's cache is
    rolled back to the committed length. `progress`, when given, receives the new-token count after each
    step. Spec: spec/verification.md#VRF-6
    """
    generator = torch.Generator().manual_seed(seed)
    verifier.truncate(0)
    draft.reset()
    out = verifier.forward(torch.tensor(prompt_ids), draft.aux_ids)
    ctx = Context(list(prompt_ids), out.aux, out.last, out.normed)
    ctx.tokens.append(proposal.next_token(out.logits[-1], generator))
    stats = Stats(proposal.speculative_tokens)
    while len(ctx.tokens) - len(prompt_ids) < max_new_tokens and ctx.tokens[-1] != eos_token_id:
        drafted = draft.propose(ctx, proposal.speculative_tokens, proposal.picker(generator))
        out = verifier.forward(torch.cat([torch.tensor(ctx.tokens[-1:]), drafted.tokens.cpu()]), draft.aux_ids)
        verdict = proposal.verify(drafted, out.logits, generator)
        n = verdict.accepted
        verifier.truncate(len(ctx.tokens) + n)  # keep the pending token and the n accepted drafts
        ctx.commit(out, n + 1, drafted.tokens[:n].tolist() + [verdict.next_token])
        stats.accepted.append(n)
        stats.drafted.append(drafted.tokens.numel())
        if progress is not None:
            progress(len(ctx.tokens) - len(prompt_ids))
    new = ctx.tokens[len(prompt_ids):]
    if eos_token_id in new:
        new = new[:new.index(eos_token_id) + 1]
    return Generation(new[:max_new_tokens], stats)


@torch.inference_mode()
def generate_plain(verifier: Verifier, prompt_ids: list[int], max_new_tokens: int, proposal: Proposal,
                   seed: int = 0, eos_token_id: int | None = None) -> list[int]:
    """The verifier alone, one token per forward pass: the reference speculative decoding must equal."""
    generator = torch.Generator().manual_seed(seed)
    verifier.truncate(0)
    logits = verifier.forward(torch.tensor(prompt_ids)).logits[-1]
    tokens: list[int] = []
    while len(tokens) < max_new_tokens and (not tokens or tokens[-1] != eos_token_id):
        tokens.append(proposal.next_token(logits, generator))
        logits = verifier.forward(torch.tensor(tokens[-1:])).logits[-1]
    return tokens


def _prefill(verifier: Verifier, prompts: list[list[int]], max_new_tokens: int):
    """Run the left-padded prompts; (last logits [B, V], positions of the last tokens [B, 1], the key mask of
    every position the decode can reach [B, width + max_new_tokens], or None when no row is padded)."""
    lengths = torch.tensor([len(p) for p in prompts])
    width = int(lengths.max())
    pad = width - lengths  # [B]
    tokens = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens[row, int(pad[row]):] = torch.tensor(prompt)
    valid = torch.arange(width + max_new_tokens)[None, :] >= pad[:, None]  # [B, S]: keys that are real tokens
    positions = (torch.arange(width)[None, :] - pad[:, None]).clamp(min=0)  # [B, T]
    # A pad row attends to itself only, so no row of the attention is empty (which would give NaN).
    mask = (torch.ones(width, width, dtype=torch.bool).tril() & valid[:, None, :width]) | torch.eye(width,
                                                                                                     dtype=torch.bool)
    verifier.truncate(0)
    logits = verifier.forward(tokens, positions=positions.to(verifier.device), mask=mask[:, None].to(verifier.device),
                              last_logits=True).logits[:, -1]  # [B, V]
    return logits, positions[:, -1:].to(verifier.device), valid.to(verifier.device) if bool(pad.any()) else None


def _choose(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """The next token of each row [B]: greedy at temperature 0, else a draw from softmax(logits / temperature)."""
    if temperature == 0:  # max's indices are argmax's (the first of equal maxima), 5x faster over bfloat16 rows
        return logits.max(-1).indices.cpu()
    probs = torch.softmax(logits.float() / temperature, -1).cpu()  # [B, V]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.inference_mode()
def generate_batch(verifier: Verifier, prompts: list[list[int]], max_new_tokens: int, eos_ids: set[int],
                   temperature: float = 0.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """The verifier alone on several prompts at once (self-distillation data): prompts left-padded to one
    length, each row at its own positions, pad keys masked (the mask built once; none when no row is padded);
    a row stops after an eos id and leaves the batch, its cache rows dropped, so it stops costing. Greedy at
    temperature 0, otherwise a draw from softmax(logits / temperature) with `generator` over the live rows."""
    out: list[list[int]] = [[] for _ in prompts]
    if not prompts or max_new_tokens < 1:
        return out
    logits, positions, valid = _prefill(verifier, prompts, max_new_tokens)
    live, eos = list(range(len(prompts))), torch.tensor(sorted(eos_ids), dtype=torch.long)
    for step in range(max_new_tokens):
        chosen = _choose(logits, temperature, generator)  # [B]
        for row, token in zip(live, chosen.tolist(), strict=True):
            out[row].append(token)
        going = ~torch.isin(chosen, eos)  # [B]
        if step == max_new_tokens - 1 or not bool(going.any()):
            break
        if not bool(going.all()):
            keep = going.nonzero()[:, 0]
            live, chosen, on_device = [live[i] for i in keep.tolist()], chosen[keep], keep.to(verifier.device)
            positions, valid = positions[on_device], None if valid is None else valid[on_device]
            verifier.select_rows(keep)
        positions = positions + 1
        mask = None if valid is None else valid[:, None, None, :len(verifier) + 1]  # [B, 1, 1, S]
        logits = verifier.forward(chosen[:, None].to(verifier.device), positions=positions, mask=mask).logits[:, -1]
    return out
