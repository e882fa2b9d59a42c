#!/usr/bin/env python3
"""Broken on purpose: RoPE scaling is read from `rope_parameters` alone (transformers 5), never from `rope_scaling`,
where VFR-9 reads `rope_scaling` when `rope_parameters` holds the default."""

from _base import serve

from specfmt import nn

layer_config = nn.LayerConfig.from_config


def parameters_only(cfg: dict) -> nn.LayerConfig:
    return layer_config({k: v for k, v in cfg.items() if k != "rope_scaling"})


if __name__ == "__main__":
    nn.LayerConfig.from_config = staticmethod(parameters_only)
    serve()
