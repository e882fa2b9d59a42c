#!/usr/bin/env python3
"""Broken on purpose: transformer_layer_config.model_type is checked for eagle3 only, where ALG-EAGLE-1,
ALG-INDEPENDENT-1, ALG-MTP-1 and ALG-DFLASH-4 require it (and its enum) for their algorithms too."""

from _base import serve
from _dropping import algorithm_of, dropping

if __name__ == "__main__":
    serve(dropping(lambda m, f: f["pointer"] == "/transformer_layer_config/model_type" and algorithm_of(m) != "eagle3"))
