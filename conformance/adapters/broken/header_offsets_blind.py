#!/usr/bin/env python3
"""Broken on purpose: does not check safetensors byte ranges (overlaps, gaps, tails pass)."""

from _base import serve


def drop_offsets(message: dict, response: dict) -> dict:
    if "findings" in response:
        response["findings"] = [f for f in response["findings"] if f["code"] not in ("header.offsets",)]
    return response


if __name__ == "__main__":
    serve(drop_offsets)
