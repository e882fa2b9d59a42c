#!/usr/bin/env python3
"""Broken on purpose: speculators_model_type "mlp" is read as mlp_speculator, an alias ALG-MLP-2 forbids."""

from _base import handle, serve


def aliased(message: dict) -> dict:
    doc = message.get("document")
    if isinstance(doc, dict) and doc.get("speculators_model_type") == "mlp":
        envelope = {**doc.get("speculators_config", {}), "algorithm": "mlp_speculator"}
        message = {**message, "document": {**doc, "speculators_model_type": "mlp_speculator",
                                           "speculators_config": envelope}}
    return handle(message)


if __name__ == "__main__":
    serve(handler=aliased)
