"""Bringing drafts of other formats into v1: `specfmt convert`, `specfmt upgrade` (compat to strict) and
`specfmt export` (what an engine needs to serve a draft).

FORMATS maps each `--from` name to its converter module's `convert(source, verifier, given) -> Conversion`
(convert/common.py says what a converter does). Every conversion ends in `write`: the decisions go into the
config under specfmt_provenance.conversion, and the checkpoint is written through `save`, so what is written
validates strict or nothing is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from specfmt.convert.common import Conversion, Source, VerifierFacts

Converter = Callable[[Source, VerifierFacts, dict], Conversion]

FORMATS: dict[str, tuple[str, str]] = {  # --from name -> (its module under specfmt.convert, what it reads)
    "eagle-research": ("eagle_research", "SafeAILab EAGLE-1/2 and HASS research drafts (fc, layers.0.*, bias)"),
    "medusa": ("medusa", "FasterDecoding Medusa heads (medusa_lm_head.pt/.safetensors, medusa_head.*, medusa_heads.*)"),
    "mlp-speculator": ("mlp_speculator", "IBM fms-extras MLPSpeculator directory (emb, proj, ln, head; speculator.*)"),
    "eagle3-research": ("eagle3_research", "SafeAILab EAGLE-3 research and SpecForge/SGLang drafts (midlayer.*)"),
    "zlab-dflash": ("zlab_dflash", "a z-lab DFlash draft (config.json with dflash_config, layers.*, fc, hidden_norm)"),
    "mtp": ("mtp", "the native MTP layer of a verifier checkpoint (MiMo, DeepSeek-V3, Qwen3-Next names; its shards)"),
    "speculators": ("speculators", "a speculators library checkpoint, v0.1 on (flattened independent configs too)"),
}


def module(fmt: str):
    """The converter module of a --from name. The modules are imported here, when one is asked for, since they
    import torch; FORMATS (the command line's choices) does not."""
    from specfmt.convert import eagle3_research, eagle_research, medusa, mlp_speculator, mtp, speculators, zlab_dflash

    modules = {"eagle3-research": eagle3_research, "eagle-research": eagle_research, "medusa": medusa,
               "mlp-speculator": mlp_speculator, "zlab-dflash": zlab_dflash, "mtp": mtp,
               "speculators": speculators}
    return modules[fmt]


def converter(fmt: str) -> Converter:
    """The convert function of a --from name."""
    return module(fmt).convert


def convert(fmt: str, path: Path, verifier: VerifierFacts, given: dict) -> Conversion:
    """Read the source at `path` (a directory, or one weights file and its directory's config.json) with the
    format's own `read_source` when it has one (MTP heads read only the shards that hold them), else
    common.read_source, and convert it."""
    from specfmt.convert.common import read_source

    reader = getattr(module(fmt), "read_source", read_source)
    source = reader(path) if path.is_dir() else reader(path.parent, (path.name,))
    return converter(fmt)(source, verifier, given)


def provenance(conversion: Conversion, tool: str, fmt: str, source: str, argv: list[str] | None) -> dict:
    """specfmt_provenance of a converted checkpoint: the tool, its command and every decision."""
    return {"tool": tool, "command": list(argv if argv is not None else sys.argv[1:]),
            "conversion": {"format": fmt, "source": source, "decisions": [d.to_json() for d in conversion.decisions]}}


def write(conversion: Conversion, out: Path, tool: str, fmt: str, source: str, argv: list[str] | None = None,
          overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Write the conversion as a strict checkpoint (ValidationError with every finding when it is not one),
    published beside `out` and never at, inside or above `source` or another of the command's `inputs` (the
    --verifier directory): specfmt.publish.UnsafeOut."""
    from specfmt import save

    config = dict(conversion.config, specfmt_provenance=provenance(conversion, tool, fmt, source, argv))
    return save(config, conversion.tensors, out, overwrite=overwrite, protect=[source, *inputs])
