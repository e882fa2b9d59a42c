"""The shard index as the SFT-5 broken adapters read it: the weight_map of a readable index, else empty (the
reference adapter has then reported the index itself)."""

import json
from pathlib import Path

INDEX = "model.safetensors.index.json"


def weight_map(checkpoint_dir: str | None) -> dict[str, str]:
    try:
        found = json.loads((Path(checkpoint_dir or ".") / INDEX).read_text(encoding="utf-8")).get("weight_map")
    except (OSError, ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}
