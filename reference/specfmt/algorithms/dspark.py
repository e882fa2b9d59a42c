"""DSpark draft: the DFlash block pass, then a sequential read-out in which a low-rank Markov head adds
to each slot's logits a bias from the token before the slot's target, and an informative
confidence head.

The backbone is reused from dflash.DFlash; only the read-out differs.
Spec: spec/algorithms/dspark.md (forward computation, ALG-DSPARK-*)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specfmt.algorithms import dflash
from specfmt.proposal import Context, Drafted, Picker, to_target
from specfmt.verifier import Verifier


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """DFlash's checks (ALG-DSPARK-1) and the confidence head's input. Spec: spec/algorithms/dspark.md"""
    out = dflash.problems(config, w, verifier)
    if config["enable_confidence_head"] and config["confidence_head_with_markov"] and config["markov_rank"] == 0:
        out.append("confidence_head_with_markov requires markov_rank > 0 (ALG-DSPARK-2)")
    return out


class DSpark:
    def __init__(self, config: dict, w: dict, verifier: Verifier):
        self.flash = dflash.DFlash(config, w, verifier)
        self.aux_ids, self.w, self.targets = self.flash.aux_ids, w, self.flash.targets
        self.rank, self.head_type = config["markov_rank"], config["markov_head_type"]
        self.confidence_reads_markov = config["confidence_head_with_markov"]
        self.confidence: torch.Tensor | None = None  # [k] of the last chain; informative only (ALG-DSPARK-5)

    def markov_bias(self, hid: torch.Tensor, emb: torch.Tensor, state: torch.Tensor):
        """One slot's bias over the draft vocabulary and the next rnn state.
        hid: [H] the slot's normed state; emb: [r] markov_w1 of the previous token; state: [r].
        Spec: spec/algorithms/dspark.md#ALG-DSPARK-4"""
        w = self.w
        if self.head_type == "vanilla":
            return F.linear(emb, w["markov_w2"]), state  # [r] -> [V_d]
        if self.head_type == "gated":
            gate = F.linear(torch.cat([hid, emb]), w["markov_gate"], w["markov_gate_bias"])  # [H+r] -> [r]
            gate = torch.sigmoid(gate)
            return F.linear(gate * emb, w["markov_w2"]), state
        joint = F.linear(torch.cat([state, emb, hid]), w["markov_joint"], w["markov_joint_bias"])  # [2r+H] -> [3r]
        g, c, o = joint.chunk(3)  # [3r] -> 3 x [r]: gate, candidate, output
        g = torch.sigmoid(g)
        state = g * state + (1 - g) * torch.tanh(c)
        return F.linear(torch.tanh(o), w["markov_w2"]), state

    def slot_logits(self, hid: torch.Tensor, prev: int, state: torch.Tensor):
        """lm_head(hid) plus the Markov bias of `prev` (a verifier id): (logits [V_d], emb [r] or None, state)."""
        base = F.linear(hid, self.flash.lm_head)  # [H] -> [V_d]
        if self.rank == 0:
            return base, None, state
        emb = self.w["markov_w1"][prev]  # indexed by verifier id: [V, r] -> [r]
        bias, state = self.markov_bias(hid, emb, state)
        return base + bias, emb, state

    def confidence_of(self, hid: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        """Estimated probability that the slot's token is accepted. Spec: spec/algorithms/dspark.md#ALG-DSPARK-5"""
        features = torch.cat([hid, emb]) if self.confidence_reads_markov else hid  # [H], [r] -> [H+r]
        return torch.sigmoid(F.linear(features, self.w["confidence"], self.w["confidence_bias"]))[0]  # [1] -> []

    def reset(self) -> None:
        """Start a new sequence: the next propose rebuilds every cached row."""
        self.flash.reset()

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """k proposals from one block pass, read out in order, each slot conditioned on the previous pick.
        Spec: spec/algorithms/dspark.md#ALG-DSPARK-4"""
        slots = self.flash.slots(k)
        hid = self.flash.block_states(ctx)  # [B, H]
        prev = ctx.tokens[-1]  # the anchor x[n] precedes the first proposed slot's target
        state = hid.new_zeros(self.rank)
        if self.rank and self.head_type == "rnn" and slots.start == 1:
            # Training unrolls the rnn over every slot from slot 0, whose previous token is also the anchor.
            _, _, state = self.slot_logits(hid[0], prev, state)
        ids, probs, confidence = [], [], []
        for i in slots:
            logits, emb, state = self.slot_logits(hid[i], prev, state)
            draft_id, q = pick(logits)
            ids.append(draft_id)
            probs.append(q)
            prev = draft_id if self.targets is None else int(self.targets[draft_id])
            if "confidence" in self.w:
                confidence.append(self.confidence_of(hid[i], emb))
        self.confidence = torch.stack(confidence) if confidence else None
        return to_target(ids, probs, self.targets, self.flash.vocab_size)


def build(config: dict, w: dict, verifier: Verifier) -> DSpark:
    return DSpark(config, w, verifier)
