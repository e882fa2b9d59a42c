"""What drafts and the generate loop share: the context a draft sees, the proposal it returns, and
the proposal method (greedy, top-k, sampling) that picks tokens and verifies them.

Randomness enters here, from a torch.Generator, as uniforms handed to the pure functions of
specfmt.verification.
Spec: spec/verification.md
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from specfmt.nn import KVCache
from specfmt.schemas import load
from specfmt.verification import Verdict, process_logits, sample, verify_greedy, verify_sampling, verify_top_k


@dataclass
class Context:
    """The committed sequence. `tokens[-1]` is the pending token: chosen, not yet run by the
    verifier. The verifier features cover positions 0..len(tokens)-2."""

    tokens: list[int]
    aux: torch.Tensor  # [n, A*H_t] verifier aux states (spec/config.md#CFG-9)
    last: torch.Tensor  # [n, H] verifier last decoder output, before the final norm (aux id N)
    normed: torch.Tensor  # [n, H] verifier final hidden state, after the final norm

    def commit(self, out, rows: int, tokens: list[int]) -> None:
        """Keep the first `rows` rows of a verifier output and append the committed tokens."""
        self.aux = torch.cat([self.aux, out.aux[:rows]])
        self.last = torch.cat([self.last, out.last[:rows]])
        self.normed = torch.cat([self.normed, out.normed[:rows]])
        self.tokens += tokens


@dataclass
class Drafted:
    """K proposed tokens in verifier ids, and the distributions they were drawn from over the
    verifier vocabulary (None: greedy, a one-hot q)."""

    tokens: torch.Tensor  # [K]
    q: torch.Tensor | None = None  # [K, V]


class Draft(Protocol):
    """What the decoding loop (specfmt.generate) calls on every draft."""

    aux_ids: tuple[int, ...]  # verifier hidden states the draft reads (spec/config.md#CFG-9)

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Propose at most k tokens after ctx.tokens (a model-based draft proposes exactly k; n-gram
        lookup may find fewer); discard any state of earlier, rejected proposals."""

    def reset(self) -> None:
        """Forget the sequence: the next propose may see an unrelated context."""


class RecurrentDraft(Draft, Protocol):
    """A state-recurrent draft (EAGLE-3, EAGLE, MTP): what propose_recurrent calls. Each row reads one token
    and one state and feeds a state to the next row."""

    verified_rows: int  # draft rows computed from verified verifier states; rows after them are speculative
    caches: list[KVCache]
    targets: torch.Tensor | None  # verifier id of each draft id (arange(V_d) + d2t); None: the verifier's vocabulary
    vocab_size: int  # the verifier's vocabulary V

    def forward_rows(self, tokens: torch.Tensor, state: torch.Tensor, positions: torch.Tensor,
                     mask: torch.Tensor | None = None, caches: list[KVCache] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (token [T], state [T, H]) at `positions` -> (logits [T, V_d], state fed to the next row [T, H]).
        Attention reads `caches` (default: the draft's own) under `mask` (default: causal over them)."""


@dataclass
class Sample:
    """One training sequence with its verifier features (specfmt.train): a packed row of documents."""

    tokens: torch.Tensor  # [T] token ids
    loss_mask: torch.Tensor  # [T] bool: the token is supervised (an assistant or generated token)
    doc: torch.Tensor  # [T] document id of each token; rows of two documents never attend to each other
    positions: torch.Tensor  # [T] position of each token within its document
    aux: torch.Tensor  # [T, A*H_t] the verifier's aux states (CFG-9); [T, 0] when the draft reads none
    last: torch.Tensor  # [T, H] the verifier's last decoder output, before its final norm (aux id N)
    normed: torch.Tensor  # [T, H] after the verifier's final norm, what its LM head reads


class TrainableDraft(Draft, Protocol):
    """What the trainer (specfmt.train) calls: the runtime's own module, run in train mode."""

    targets: torch.Tensor | None

    def train_forward(self, sample: Sample, steps: int) -> list[torch.Tensor]:
        """Teacher-forced logits of every row for steps 0..steps-1: element k is [T, V_d], where row t (which
        reads the verifier's state at position t) predicts the token at position t + 2 + k."""


@dataclass
class Picker:
    """Chooses a draft token from draft logits: argmax (temperature 0) or a draw."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    generator: torch.Generator | None = None

    def __call__(self, logits: torch.Tensor) -> tuple[int, torch.Tensor | None]:
        """logits: [V_draft] -> (draft id, its distribution or None when greedy)."""
        if self.temperature == 0:
            return int(logits.argmax()), None
        probs = process_logits(logits, self.temperature, self.top_k, self.top_p)
        return sample(probs, float(torch.rand((), generator=self.generator))), probs


def method_default(field_name: str, kind: str = "greedy"):
    """A proposal method field's default, as the config schema declares it (the one place it is written)."""
    return load("config.schema.json")["$defs"][f"proposal_{kind}"]["properties"][field_name]["default"]


@dataclass
class Proposal:
    """A proposal method with its runtime settings; the method's fields default as the schema says.
    Spec: spec/config.md#CFG-7"""

    kind: str = "greedy"  # greedy | sampling
    speculative_tokens: int = method_default("speculative_tokens")
    verifier_accept_k: int = method_default("verifier_accept_k")
    accept_tolerance: float = method_default("accept_tolerance")
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0

    def picker(self, generator: torch.Generator) -> Picker:
        if self.kind == "greedy":
            return Picker()
        return Picker(self.temperature, self.top_k, self.top_p, generator)

    def next_token(self, logits: torch.Tensor, generator: torch.Generator) -> int:
        """The verifier's own choice from one row of logits (plain decoding, and after prefill)."""
        if self.kind == "greedy":
            return int(logits.argmax())
        probs = process_logits(logits, self.temperature, self.top_k, self.top_p)
        return sample(probs, float(torch.rand((), generator=generator)))

    def verify(self, drafted: Drafted, logits: torch.Tensor, generator: torch.Generator) -> Verdict:
        """logits: [K+1, V] of the verifier over the pending token and the K drafts."""
        if self.kind == "greedy" and self.verifier_accept_k == 1:
            return verify_greedy(drafted.tokens, logits)
        if self.kind == "greedy":
            return verify_top_k(drafted.tokens, logits, self.verifier_accept_k, self.accept_tolerance)
        p = process_logits(logits, self.temperature, self.top_k, self.top_p)
        k = drafted.tokens.numel()
        q = (drafted.q if drafted.q is not None
             else torch.nn.functional.one_hot(drafted.tokens, p.shape[-1]).float()).to(p.device)
        uniforms = torch.rand(k + 1, generator=generator, dtype=torch.float64)
        return verify_sampling(drafted.tokens, q, p, uniforms[:k], float(uniforms[k]))


def to_target(draft_ids: list[int], probs: list[torch.Tensor | None], targets: torch.Tensor | None,
              vocab_size: int) -> Drafted:
    """Map draft-vocabulary ids and distributions to verifier ids through `targets`
    (= arange(V_d) + d2t, spec/algorithms/eagle3.md#ALG-EAGLE3-8); None means the same vocabulary."""
    ids = torch.tensor(draft_ids, dtype=torch.long)
    tokens = ids if targets is None else targets.cpu()[ids]  # token ids live on the host
    if any(p is None for p in probs):
        return Drafted(tokens)
    q = torch.stack(probs)  # [K, V_d]
    if targets is not None:
        q = torch.zeros(len(probs), vocab_size, dtype=q.dtype, device=q.device).index_copy_(
            1, targets.to(q.device), q)  # [K, V_d] -> [K, V]
    return Drafted(tokens, q)


def draft_chain(forward_rows, pick: Picker, logits: torch.Tensor, state: torch.Tensor, position: int, k: int,
                targets: torch.Tensor | None, vocab_size: int) -> Drafted:
    """The k proposals of a state-recurrent draft (EAGLE-3, EAGLE, MTP). `logits` and `state` are the
    outputs of the last verified row; each further row reads the previous pick and the state it fed back.
    `forward_rows(tokens, state, positions) -> (logits, state)`; `position` is the first free one."""
    device = state.device
    ids, probs = [], []
    for s in range(k):
        draft_id, q = pick(logits[-1])
        ids.append(draft_id)
        probs.append(q)
        if s + 1 < k:
            token = draft_id if targets is None else int(targets[draft_id])
            logits, state = forward_rows(torch.tensor([token], device=device), state[-1:],
                                         torch.tensor([position + s], device=device))
    return to_target(ids, probs, targets, vocab_size)


def propose_recurrent(draft: RecurrentDraft, features, ctx: Context, k: int, pick: Picker) -> Drafted:
    """Catch-up rows over the newly verified positions, then the chain of k proposals (EAGLE-3, EAGLE,
    MTP); `features(positions)` is the state each catch-up row starts from.
    Spec: spec/verification.md#VRF-6"""
    logits, state = catch_up(draft, features, ctx)
    return draft_chain(draft.forward_rows, pick, logits, state, len(ctx.tokens) - 1, k, draft.targets,
                       draft.vocab_size)


def catch_up(draft: RecurrentDraft, features, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """Forget the speculative rows of the last proposal and run the draft's rows over the newly verified
    positions, up to row n-1 (which reads the pending token); their (logits, fed-back states). The draft's
    caches then hold rows 0..n-1. Spec: spec/verification.md#VRF-6"""
    n = len(ctx.tokens) - 1  # positions the verifier has run
    # Row n-1 is always recomputed: its logits give the first proposal.
    draft.verified_rows = min(draft.verified_rows, n - 1)
    for cache in draft.caches:
        cache.truncate(draft.verified_rows)  # forget the speculative rows of the last proposal
    new = torch.arange(draft.verified_rows, n)
    state = features(new)
    new = new.to(state.device)
    logits, state = draft.forward_rows(torch.tensor(ctx.tokens, device=state.device)[new + 1], state, new)
    draft.verified_rows = n  # row t reads x[t+1]; rows 0..n-1 now rest on verified states
    return logits, state


class RecordingPicker(Picker):
    """A greedy picker that keeps the logits of every row it picks from (the draft_forward output)."""

    def __init__(self):
        super().__init__()
        self.logits: list[torch.Tensor] = []

    def __call__(self, logits: torch.Tensor) -> tuple[int, None]:
        self.logits.append(logits.float().clone())
        return int(logits.argmax()), None
