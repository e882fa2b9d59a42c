#!/usr/bin/env python3
"""Broken on purpose: a listed tensor whose shard entry is malformed (header.entry) is also reported as absent from
its shard (index.mismatch), against SFT-5: a malformed entry counts as stored."""

from _base import serve
from _index import INDEX, weight_map


def also_absent(message: dict, response: dict) -> dict:
    listed = weight_map(message.get("checkpoint_dir"))
    for f in list(response.get("findings", [])):
        name = f["pointer"][1:]
        if f["code"] == "header.entry" and "/" not in name and listed.get(name) == f["file"]:
            response["findings"].append({"code": "index.mismatch", "pointer": f"/weight_map/{name}",
                                         "severity": "error", "file": INDEX})
    return response


if __name__ == "__main__":
    serve(also_absent)
