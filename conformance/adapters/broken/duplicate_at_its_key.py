#!/usr/bin/env python3
"""Broken on purpose: header.duplicate names the repeated key alone (`/dtype` for a key repeated inside an entry),
as SFT-2 said before issue 23, not the JSON Pointer of the repeated member (`/<name>/dtype`)."""

from _base import serve


def key_only(message: dict, response: dict) -> dict:
    for f in response.get("findings", []):
        if f["code"] == "header.duplicate":
            f["pointer"] = "/" + f["pointer"].rsplit("/", 1)[-1]
    return response


if __name__ == "__main__":
    serve(key_only)
