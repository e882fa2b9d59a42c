"""generate(): speculative decoding with a verifier and a draft, with per-step statistics.

Spec: spec/verification.md#VRF-6
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from specfmt import tree, tree_step
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
             progress: Callable[[int], None] | None = None,
             shape: tree.StaticTree | tree.DynamicTree | None = None) -> Generation:
    """Decode up to `max_new_tokens` tokens after `prompt_ids`, K = proposal.speculative_tokens per step.

    Each step: the draft proposes K tokens; the verifier runs the pending token and the K drafts in
    one pass; the proposal method accepts a prefix and picks the next token; the verifier's cache is
    rolled back to the committed length. With a tree `shape` the draft proposes a tree instead, verified by
    the tree rules with the proposal's kind (spec/trees.md). `progress`, when given, receives the new-token
    count after each step. Spec: spec/verification.md#VRF-6
    """
    generator = torch.Generator().manual_seed(seed)
    verifier.pack()
    verifier.truncate(0)
    draft.reset()
    out = verifier.forward(torch.tensor(prompt_ids), draft.aux_ids)
    ctx = Context(list(prompt_ids), out.aux, out.last, out.normed)
    ctx.tokens.append(proposal.next_token(out.logits[-1], generator))
    stats = Stats(proposal.speculative_tokens if shape is None else shape.depth)
    while len(ctx.tokens) - len(prompt_ids) < max_new_tokens and ctx.tokens[-1] != eos_token_id:
        if shape is None:
            n, drafted = chain_step(verifier, draft, ctx, proposal, generator)
        else:
            n, drafted = tree_step.step(verifier, draft, ctx, proposal, generator, shape)
        stats.accepted.append(n)
        stats.drafted.append(drafted)
        if progress is not None:
            progress(len(ctx.tokens) - len(prompt_ids))
    new = ctx.tokens[len(prompt_ids):]
    if eos_token_id in new:
        new = new[:new.index(eos_token_id) + 1]
    return Generation(new[:max_new_tokens], stats)


def chain_step(verifier: Verifier, draft: Draft, ctx: Context, proposal: Proposal,
               generator: torch.Generator) -> tuple[int, int]:
    """One chain step of VRF-6: propose K tokens, score them in one pass, verify, roll the cache back and commit;
    (accepted, tokens drafted). Spec: spec/verification.md#VRF-6"""
    drafted = draft.propose(ctx, proposal.speculative_tokens, proposal.picker(generator))
    out = verifier.forward(torch.cat([torch.tensor(ctx.tokens[-1:]), drafted.tokens.cpu()]), draft.aux_ids)
    verdict = proposal.verify(drafted, out.logits, generator)
    n = verdict.accepted
    verifier.truncate(len(ctx.tokens) + n)  # keep the pending token and the n accepted drafts
    ctx.commit(out, n + 1, drafted.tokens[:n].tolist() + [verdict.next_token])
    return n, drafted.tokens.numel()


@torch.inference_mode()
def generate_plain(verifier: Verifier, prompt_ids: list[int], max_new_tokens: int, proposal: Proposal,
                   seed: int = 0, eos_token_id: int | None = None) -> list[int]:
    """The verifier alone, one token per forward pass: the reference speculative decoding must equal."""
    generator = torch.Generator().manual_seed(seed)
    verifier.pack()
    verifier.truncate(0)
    logits = verifier.forward(torch.tensor(prompt_ids)).logits[-1]
    tokens: list[int] = []
    while len(tokens) < max_new_tokens and (not tokens or tokens[-1] != eos_token_id):
        tokens.append(proposal.next_token(logits, generator))
        logits = verifier.forward(torch.tensor(tokens[-1:])).logits[-1]
    return tokens


def _prefill(verifier: Verifier, prompts: list[list[int]]):
    """Run the left-padded prompts from an empty cache; (last logits [B, V], positions of the last tokens [B, 1],
    the left padding of each row [B])."""
    lengths = torch.tensor([len(p) for p in prompts])
    width = int(lengths.max())
    pad = width - lengths  # [B]
    tokens = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens[row, int(pad[row]):] = torch.tensor(prompt)
    valid = torch.arange(width)[None, :] >= pad[:, None]  # [B, S]: keys that are real tokens
    positions = (torch.arange(width)[None, :] - pad[:, None]).clamp(min=0)  # [B, T]
    # A pad row attends to itself only, so no row of the attention is empty (which would give NaN).
    mask = (torch.ones(width, width, dtype=torch.bool).tril() & valid[:, None, :]) | torch.eye(width, dtype=torch.bool)
    verifier.truncate(0)
    logits = verifier.forward(tokens, positions=positions.to(verifier.device), mask=mask[:, None].to(verifier.device),
                              last_logits=True).logits[:, -1]  # [B, V]
    return logits, positions[:, -1:].to(verifier.device), pad


def _choose(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """The next token of each row [B]: greedy at temperature 0, else a draw from softmax(logits / temperature)."""
    if temperature == 0:  # max's indices are argmax's (the first of equal maxima), 5x faster over bfloat16 rows
        return logits.max(-1).indices.cpu()
    probs = torch.softmax(logits.float() / temperature, -1).cpu()  # [B, V]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


COMPACT = 64  # cache columns that no row reads any more before they are dropped (a copy of the cache)


class _Rows:
    """The rows of a batched decode: the prompt each row answers (None: a free row, whose tokens go nowhere
    until a refill), the first cache column each row attends to, and each row's last position."""

    def __init__(self, verifier: Verifier, prompts: list[list[int]]):
        self.verifier, self.prompts = verifier, prompts
        self.owner: list[int | None] = []
        self.start = torch.zeros(0, dtype=torch.long)  # [B]
        self.positions = torch.zeros(0, 1, dtype=torch.long, device=verifier.device)  # [B, 1]

    def fill(self, ids: list[int]) -> torch.Tensor:
        """The first rows, prompts `ids` prefilled from an empty cache; their last logits [B, V]."""
        logits, self.positions, self.start = _prefill(self.verifier, [self.prompts[i] for i in ids])
        self.owner = list(ids)
        return logits

    def refill(self, rows: list[int], ids: list[int]) -> torch.Tensor:
        """Prompts `ids` prefilled beside the batch and written into free `rows` as the last columns of the cache
        (which gains columns in front when a prompt is longer); their last logits [len(ids), V]."""
        side = self.verifier.sibling()
        logits, positions, pad = _prefill(side, [self.prompts[i] for i in ids])
        width, length = len(side), len(self.verifier)
        if width > length:
            self.verifier.shift(length - width)
            self.start, length = self.start + width - length, width
        at = torch.tensor(rows)
        self.verifier.put_rows(at, side)
        self.start[at], self.positions[at.to(self.positions.device)] = length - width + pad, positions
        for row, i in zip(rows, ids, strict=True):
            self.owner[row] = i
        return logits

    def record(self, rows: list[int], tokens: torch.Tensor, out: list[list[int]], eos: set[int], limit: int) -> None:
        """Append each row's token to its prompt's answer; a row whose answer ends (eos, or `limit` tokens) is
        freed and from then on attends to its own new columns only."""
        for row, token in zip(rows, tokens.tolist(), strict=True):
            i = self.owner[row]
            if i is not None:
                out[i].append(token)
                if token in eos or len(out[i]) == limit:
                    self.owner[row], self.start[row] = None, len(self.verifier)

    def keep(self, rows: list[int]) -> None:
        """Only these rows stay in the batch (no prompt waits for the others); their caches too."""
        at = torch.tensor(rows, dtype=torch.long)
        self.verifier.select_rows(at)
        self.owner, self.start = [self.owner[i] for i in rows], self.start[at]
        self.positions = self.positions[at.to(self.positions.device)]

    def mask(self) -> torch.Tensor | None:
        """The keys each row attends to in the next step [B, 1, 1, S]; None when every row reads every column."""
        if not bool(self.start.any()):
            return None
        keys = torch.arange(len(self.verifier) + 1)
        return (keys[None, :] >= self.start[:, None])[:, None, None, :].to(self.verifier.device)

    def compact(self) -> None:
        """Drop the first columns when no row reads them (COMPACT of them at least)."""
        first = int(self.start.min())
        if first >= COMPACT:
            self.verifier.shift(first)
            self.start = self.start - first


@torch.inference_mode()
def generate_batch(verifier: Verifier, prompts: list[list[int]], max_new_tokens: int, eos_ids: set[int],
                   temperature: float = 0.0, generator: torch.Generator | None = None,
                   rows: int = 0) -> list[list[int]]:
    """The verifier alone on several prompts at once (self-distillation data): prompts left-padded to one
    length, each row at its own positions, pad keys masked (no mask when no row is padded). `rows` > 0 decodes
    at most that many prompts at once: a row that ends takes the next prompt (refilled once an eighth of the
    rows is free), so the batch stays full; once no prompt waits, an ended row leaves the batch, its cache rows
    dropped. Each answer equals its prompt decoded alone (greedy, up to rounding). Greedy at temperature 0,
    otherwise a draw from softmax(logits / temperature) with `generator` over the rows of each step."""
    out: list[list[int]] = [[] for _ in prompts]
    if not prompts or max_new_tokens < 1:
        return out
    verifier.pack()
    width, batch, eos = rows or len(prompts), _Rows(verifier, prompts), set(eos_ids)
    queue = list(range(len(prompts)))
    logits, queue = batch.fill(queue[:width]), queue[width:]
    while True:
        chosen = _choose(logits, temperature, generator)  # [B]
        batch.record(list(range(len(chosen))), chosen, out, eos, max_new_tokens)
        queue = _refill(batch, queue, chosen, max(1, width // 8), (out, eos, max_new_tokens, temperature, generator))
        live = [row for row, i in enumerate(batch.owner) if i is not None]
        if not live:
            return out
        if not queue and len(live) < len(chosen):
            batch.keep(live)
            chosen = chosen[live]
        batch.compact()
        batch.positions = batch.positions + 1
        logits = verifier.forward(chosen[:, None].to(verifier.device), positions=batch.positions,
                                  mask=batch.mask()).logits[:, -1]


def _refill(batch: _Rows, queue: list[int], chosen: torch.Tensor, least: int, answer: tuple) -> list[int]:
    """Give waiting prompts to the free rows while at least `least` are free (or every waiting prompt has one);
    each new row's first token goes into `chosen`. The prompts still waiting."""
    out, eos, limit, temperature, generator = answer
    while queue:
        free = [row for row, i in enumerate(batch.owner) if i is None]
        if not free or len(free) < min(least, len(queue)):
            return queue
        rows, ids, queue = free[:len(queue)], queue[:len(free)], queue[len(free):]
        picked = _choose(batch.refill(rows, ids), temperature, generator)
        chosen[rows] = picked
        batch.record(rows, picked, out, eos, limit)
    return queue
