#!/usr/bin/env python3
"""Broken on purpose: checks d2t's targets but never compares t2d with them (ALG-EAGLE3-8's t2d half)."""

from _base import serve


def drop_t2d(message: dict, response: dict) -> dict:
    if "findings" in response:
        response["findings"] = [f for f in response["findings"]
                                if (f["code"], f["pointer"]) != ("hazard.vocab_mapping", "/t2d")]
    return response


if __name__ == "__main__":
    serve(drop_t2d)
