"""The rule-coverage broken adapters' plumbing: the algorithm a validate message is about, and a transform that
drops the findings a defect does not report."""

import json
from collections.abc import Callable
from pathlib import Path


def algorithm_of(message: dict) -> str | None:
    """The speculators_model_type of the config.json document, or of the checkpoint's config.json."""
    doc = message.get("document")
    if message.get("checkpoint_dir"):
        try:
            doc = json.loads((Path(message["checkpoint_dir"]) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return doc.get("speculators_model_type") if isinstance(doc, dict) else None


def dropping(missed: Callable[[dict, dict], bool]) -> Callable[[dict, dict], dict]:
    """A transform that leaves out every finding `missed(message, finding)` selects."""
    def transform(message: dict, response: dict) -> dict:
        if "findings" in response:
            response["findings"] = [f for f in response["findings"] if not missed(message, f)]
        return response
    return transform
