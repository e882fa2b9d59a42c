#!/usr/bin/env python3
"""Broken on purpose: a medusa checkpoint's tensor shapes are not compared with M, R, H and V, where ALG-MEDUSA-4
requires them checked (layout.shape)."""

from _base import serve
from _dropping import algorithm_of, dropping

if __name__ == "__main__":
    serve(dropping(lambda m, f: f["code"] == "layout.shape" and algorithm_of(m) == "medusa"))
