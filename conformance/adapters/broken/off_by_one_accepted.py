#!/usr/bin/env python3
"""Broken on purpose: reports one accepted draft token too many whenever fewer than K are accepted."""

from _base import OPERATIONS, serve, with_operations


def one_more(operation):
    def run(model, params: dict, x: dict) -> dict:
        out = operation(model, params, x)
        if int(out["accepted"][0]) < x["draft_tokens"].numel():
            out["accepted"] = out["accepted"] + 1
        return out
    return run


if __name__ == "__main__":
    serve(handler=with_operations(verify_greedy=one_more(OPERATIONS["verify_greedy"]),
                                  verify_sampling=one_more(OPERATIONS["verify_sampling"])))
