#!/usr/bin/env python3
"""Broken on purpose: maps draft-vocabulary ids to verifier ids as if d2t held no offsets."""

import torch
from _base import HANDLES, handle, serve


def identity_d2t(message: dict) -> dict:
    response = handle(message)
    draft = HANDLES[response["handle"]].draft if message.get("cmd") == "load" and "handle" in response else None
    if getattr(draft, "targets", None) is not None:
        draft.targets = torch.arange(draft.targets.numel(), device=draft.targets.device)  # draft id = verifier id
    return response


if __name__ == "__main__":
    serve(handler=identity_d2t)
