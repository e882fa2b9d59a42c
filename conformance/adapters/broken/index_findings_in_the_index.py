#!/usr/bin/env python3
"""Broken on purpose: files every index.mismatch under model.safetensors.index.json, also the ones SFT-5 puts in
the shard that stores the tensor (a later copy, an unlisted tensor). Code and pointer are right; only `file` is
wrong, which runner 1.2.0 grades."""

from _base import serve

INDEX = "model.safetensors.index.json"


def into_the_index(message: dict, response: dict) -> dict:
    for f in response.get("findings", []):
        if f["code"] == "index.mismatch":
            f["file"] = INDEX
    return response


if __name__ == "__main__":
    serve(into_the_index)
