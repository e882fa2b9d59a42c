#!/usr/bin/env python3
"""Broken on purpose: `load` reads a draft without validating it first, so a checkpoint that validation finds in error
is run (or fails later without the refusal code), where GEN-1 requires it rejected (`refused.invalid`)."""

from types import SimpleNamespace

from _base import serve

import specfmt.runtime

specfmt.runtime.validate = lambda path, profile="compat", **kwargs: SimpleNamespace(errors=[])  # the defect

if __name__ == "__main__":
    serve()
