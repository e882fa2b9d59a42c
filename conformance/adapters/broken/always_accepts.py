#!/usr/bin/env python3
"""Broken on purpose: verification accepts every draft token, then takes the bonus token of row K."""

from _base import serve, verdict, with_operations

from specfmt.verification import Verdict, sample


def accept_greedy(model, params: dict, x: dict) -> dict:
    k = x["draft_tokens"].numel()
    return verdict(Verdict(k, int(x["target_logits"][k].argmax())))


def accept_sampling(model, params: dict, x: dict) -> dict:
    k = x["draft_tokens"].numel()
    return verdict(Verdict(k, sample(x["p"][k], float(x["final_uniform"][0]))))


if __name__ == "__main__":
    serve(handler=with_operations(verify_greedy=accept_greedy, verify_sampling=accept_sampling))
