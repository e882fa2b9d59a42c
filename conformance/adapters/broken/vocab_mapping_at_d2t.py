#!/usr/bin/env python3
"""Broken on purpose: reports every hazard.vocab_mapping at /d2t, the guess an implementer made before
ALG-EAGLE3-8 gave the pointer of the t2d half (/t2d)."""

from _base import serve


def all_at_d2t(message: dict, response: dict) -> dict:
    for f in response.get("findings", []):
        if f["code"] == "hazard.vocab_mapping":
            f["pointer"] = "/d2t"
    return response


if __name__ == "__main__":
    serve(all_at_d2t)
