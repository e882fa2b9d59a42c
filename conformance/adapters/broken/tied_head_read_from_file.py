#!/usr/bin/env python3
"""Broken on purpose: a verifier with tie_word_embeddings reads a stored lm_head.weight as its LM head, where VFR-2
makes the LM head the embedding and a stored lm_head.weight unread."""

from pathlib import Path

from _base import serve
from safetensors.torch import load_file

from specfmt.verifier import Verifier

from_pretrained = Verifier.from_pretrained


def stored_head(path, *args, **kwargs) -> Verifier:
    verifier = from_pretrained(path, *args, **kwargs)
    stored = load_file(Path(path) / "model.safetensors")
    if verifier.config.get("tie_word_embeddings") and "lm_head.weight" in stored:
        verifier.w["lm_head"] = stored["lm_head.weight"].to(verifier.dtype)
    return verifier


if __name__ == "__main__":
    Verifier.from_pretrained = staticmethod(stored_head)
    serve()
