"""What the two research converters (`--from eagle-research`, `--from eagle3-research`) share: a research draft's
config.json, or one SourceError line when there is none or it is a speculators checkpoint's. That it is an object
whose sizes are positive integers is checked once, for every converter, where common.read_source reads it
(specfmt.reader_facts).

Spec: spec/algorithms/eagle.md, spec/algorithms/eagle3.md
"""

from __future__ import annotations

import json

from specfmt.convert.common import Source, SourceError


def research_config(source: Source, what: str) -> dict:
    """The source's config.json (read_source has checked its sizes); `what` names the draft kind in the message for a
    directory without one."""
    cfg, where = source.config, f"{source.path}/config.json"
    if cfg is None:
        raise SourceError(f"{source.path}: no config.json; {what} ships its Llama config")
    if "speculators_model_type" in cfg:
        raise SourceError(f"{where}: a speculators checkpoint ({json.dumps(cfg['speculators_model_type'])}); "
                          "convert it with --from speculators")
    return cfg
