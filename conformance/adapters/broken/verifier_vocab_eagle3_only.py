#!/usr/bin/env python3
"""Broken on purpose: the verifier binding's vocab_size is compared for eagle3 only, where ALG-EAGLE-3 and
ALG-INDEPENDENT-2 compare it for eagle and independent too."""

from _base import serve
from _dropping import algorithm_of, dropping

if __name__ == "__main__":
    serve(dropping(lambda m, f: f["code"] == "config.verifier_mismatch"
                   and f["pointer"] == "/transformer_layer_config/vocab_size" and algorithm_of(m) != "eagle3"))
