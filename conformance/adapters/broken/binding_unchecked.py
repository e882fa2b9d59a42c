#!/usr/bin/env python3
"""Broken on purpose: a draft is built without comparing it with the verifier it runs beside, where CFG-8 (and
ALG-EAGLE-3, ALG-INDEPENDENT-2) require each stated or read fact and each aux layer id checked against the verifier's
config first (`refused.draft`)."""

from _base import serve

import specfmt.runtime

specfmt.runtime.check_binding = lambda *args, **kwargs: None  # the defect

if __name__ == "__main__":
    serve()
