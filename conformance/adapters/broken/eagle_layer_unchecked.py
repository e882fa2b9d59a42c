#!/usr/bin/env python3
"""Broken on purpose: an eagle draft's layer count and transformer_layer_architecture are not checked, where
ALG-EAGLE-1 requires a runtime to reject L != 1 and a class other than LlamaDecoderLayer or auto."""

from _base import serve

from specfmt.algorithms import eagle

eagle.problems = lambda config, w, verifier: []  # the defect

if __name__ == "__main__":
    serve()
