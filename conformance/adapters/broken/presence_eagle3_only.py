#!/usr/bin/env python3
"""Broken on purpose: which tensors must be present, absent or are unexpected is checked for eagle3 checkpoints
only, where LAY-4 and every algorithm page's presence rule (ALG-EAGLE-4, ALG-MTP-3, ALG-MEDUSA-3, ...) apply to
all of them."""

from _base import serve
from _dropping import algorithm_of, dropping

PRESENCE = ("layout.missing", "layout.forbidden", "layout.unexpected")

if __name__ == "__main__":
    serve(dropping(lambda m, f: f["code"] in PRESENCE and algorithm_of(m) not in ("eagle3", None)))
