#!/usr/bin/env python3
"""Broken on purpose: a DFlash draft's `layer_types` are not checked (as validation does not check them), where
ALG-DFLASH-3 requires a runtime to reject them unless they hold L known entries, with a window for sliding ones."""

from _base import serve

from specfmt.algorithms import dflash

checked = dflash.problems


def problems(config: dict, w: dict, verifier) -> list[str]:
    layer = {k: v for k, v in config["transformer_layer_config"].items() if k != "layer_types"}  # the defect
    return checked({**config, "transformer_layer_config": layer}, w, verifier)


dflash.problems = problems

if __name__ == "__main__":
    serve()
