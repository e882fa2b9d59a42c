#!/usr/bin/env python3
"""Broken on purpose: an independent config in the flattened speculators v0.1.0 to v0.4.0 form is read, where
ALG-INDEPENDENT-3 requires transformer_layer_config (config.required)."""

from _base import serve
from _dropping import algorithm_of, dropping

if __name__ == "__main__":
    serve(dropping(lambda m, f: f["code"] == "config.required" and f["pointer"] == "/transformer_layer_config"
                   and algorithm_of(m) == "independent"))
