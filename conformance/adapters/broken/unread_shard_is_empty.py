#!/usr/bin/env python3
"""Broken on purpose: a shard whose header could not be read counts as read and empty, so every tensor the index
lists in it is also index.mismatch, against SFT-5: an unread header gives no index.mismatch."""

from _base import serve
from _index import INDEX, weight_map

UNREAD = ("header.truncated", "header.length", "header.json", "header.duplicate")


def listed_as_absent(message: dict, response: dict) -> dict:
    if "findings" not in response:
        return response
    unread = {f["file"] for f in response["findings"] if f["code"] in UNREAD}
    listed = weight_map(message.get("checkpoint_dir"))
    response["findings"] += [{"code": "index.mismatch", "pointer": f"/weight_map/{name}", "severity": "error",
                              "file": INDEX} for name, shard in sorted(listed.items()) if shard in unread]
    return response


if __name__ == "__main__":
    serve(listed_as_absent)
