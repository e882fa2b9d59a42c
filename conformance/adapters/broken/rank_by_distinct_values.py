#!/usr/bin/env python3
"""Broken on purpose: the top-k rule ranks a draft token by the distinct values above it, so tied tokens above it
count once, where VRF-4 counts every token strictly more likely."""

import torch
from _base import serve, verdict, with_operations

from specfmt.verification import Verdict


def verify_top_k(model, params: dict, x: dict) -> dict:
    logp = torch.log_softmax(x["target_logits"].double(), -1)
    best, n = logp.argmax(-1), 0
    while n < x["draft_tokens"].numel():
        token = int(x["draft_tokens"][n])
        rank = torch.unique(logp[n][logp[n] > logp[n, token]]).numel()  # the defect: ties above counted once
        if rank >= params["accept_k"] or float(logp[n, best[n]] - logp[n, token]) > params["accept_tolerance"]:
            break
        n += 1
    return verdict(Verdict(n, int(best[n])))


if __name__ == "__main__":
    serve(handler=with_operations(verify_top_k=verify_top_k))
