#!/usr/bin/env python3
"""Broken on purpose: a DFlash block always has B - 1 predicting slots, where ALG-DFLASH-2 gives it B with
sample_from_anchor (the anchor's slot predicts too), so K = B, and a block of 1, are refused."""

from _base import serve

from specfmt.algorithms import dflash
from specfmt.findings import Refused


def slots(self, k: int) -> range:
    if k > self.block_size - 1:  # the defect: the anchor's slot never counted
        raise Refused("refused.k_above_limit", f"k = {k} exceeds the {self.block_size - 1} predicting slots")
    return range(self.first_slot, self.first_slot + k)


dflash.DFlash.slots = slots

if __name__ == "__main__":
    serve()
