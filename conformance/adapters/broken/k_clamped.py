#!/usr/bin/env python3
"""Broken on purpose: a request for more draft tokens than the draft's heads, stages or predicting slots is answered
with as many as it has, where ALG-MEDUSA-2, ALG-MLP-1 and ALG-DFLASH-2 require it refused."""

from _base import OPERATIONS, serve, with_operations

from specfmt.findings import Refused


def clamped(model, params: dict, x):
    k = params["k"]
    while True:
        try:
            return OPERATIONS["propose"](model, {**params, "k": k}, x)
        except Refused as e:
            if e.refusal != "refused.k_above_limit" or k == 1:
                raise
            k -= 1


if __name__ == "__main__":
    serve(handler=with_operations(propose=clamped))
