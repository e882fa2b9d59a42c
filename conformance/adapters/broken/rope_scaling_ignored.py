#!/usr/bin/env python3
"""Broken on purpose: RoPE runs unscaled whatever the scaling object says, llama3 or a rope_type v1.0 does not
define, where VFR-9 scales llama3 and refuses any other type."""

import dataclasses

from _base import serve

from specfmt import nn

layer_config = nn.LayerConfig.from_config


def unscaled(cfg: dict) -> nn.LayerConfig:
    return dataclasses.replace(layer_config(cfg), rope_scaling=None)


if __name__ == "__main__":
    nn.LayerConfig.from_config = staticmethod(unscaled)
    serve()
