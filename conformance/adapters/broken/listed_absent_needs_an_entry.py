#!/usr/bin/env python3
"""Broken on purpose: SFT-5 as it read before issue 23. A listed tensor that its shard's header lacks is
index.mismatch only while that header holds at least one well-formed entry; a shard whose header holds no tensor
gives nothing (what the reference did before suite 2.0.0)."""

import json
import struct
from pathlib import Path

from _base import serve
from _index import weight_map


def holds_a_tensor(path: Path) -> bool:
    """Whether the shard's header has an entry with dtype, shape and data_offsets (header only, no data read)."""
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return any(isinstance(e, dict) and {"dtype", "shape", "data_offsets"} <= e.keys()
               for name, e in header.items() if name != "__metadata__")


def listed_in_empty_shard(root: Path, pointer: str) -> bool:
    name = pointer.removeprefix("/weight_map/").replace("~1", "/").replace("~0", "~")
    shard = weight_map(str(root)).get(name)
    return isinstance(shard, str) and not holds_a_tensor(root / shard)


def skip_empty_shards(message: dict, response: dict) -> dict:
    if "findings" in response and "checkpoint_dir" in message:
        root = Path(message["checkpoint_dir"])
        response["findings"] = [f for f in response["findings"] if not (
            f["code"] == "index.mismatch" and f["pointer"].startswith("/weight_map/")
            and listed_in_empty_shard(root, f["pointer"]))]
    return response


if __name__ == "__main__":
    serve(skip_empty_shards)
