#!/usr/bin/env python3
"""Broken on purpose: an eagle3 checkpoint may omit lm_head.weight and store peagle's mask_hidden and the
training-only verifier_lm_head.weight, where ALG-EAGLE3-9 requires the first and ALG-EAGLE3-10 refuses the others."""

from _base import serve
from _dropping import algorithm_of, dropping

LENIENT = {("layout.missing", "/lm_head.weight"), ("layout.unexpected", "/mask_hidden"),
           ("hazard.stray_verifier_tensor", "/verifier_lm_head.weight")}

if __name__ == "__main__":
    serve(dropping(lambda m, f: (f["code"], f["pointer"]) in LENIENT and algorithm_of(m) == "eagle3"))
