#!/usr/bin/env python3
"""Broken on purpose: in `generate`, the draft reads every verifier feature one position late (row t holds the
state of position t-1), a misalignment that leaves greedy output intact and shows only in the acceptance
counters."""

import dataclasses

import torch
from _base import OPERATIONS, serve, with_operations

from specfmt.proposal import Context


class Late:
    """A draft whose context features are shifted down one row before it reads them."""

    def __init__(self, draft):
        self.draft, self.aux_ids, self.targets = draft, draft.aux_ids, getattr(draft, "targets", None)

    def reset(self) -> None:
        self.draft.reset()

    def propose(self, ctx: Context, k: int, pick):
        late = [torch.cat([f[:1], f[:-1]]) for f in (ctx.aux, ctx.last, ctx.normed)]
        return self.draft.propose(Context(list(ctx.tokens), *late), k, pick)


def late_generate(model, params: dict, x: dict) -> dict:
    return OPERATIONS["generate"](dataclasses.replace(model, draft=Late(model.draft)), params, x)


if __name__ == "__main__":
    serve(handler=with_operations(generate=late_generate))
