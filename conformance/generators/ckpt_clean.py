"""Valid checkpoints: every strict builder variant written by specfmt.save (real, loadable files, in
bfloat16 to keep the suite small), a sharded one, and every corpus checkpoint as a header-only
fixture under compat."""

from __future__ import annotations

from pathlib import Path

from conformance.generators import variants
from conformance.generators.ckpt import CheckpointCase, in_bfloat16, tiny_config, weights
from conformance.generators.common import corpus_id, slug
from conformance.generators.page_rules import PRESENCE, page_anchors
from specfmt import save


def _saver(variant: str):
    def build(path: Path) -> None:
        config = in_bfloat16(variants.config_of(variant))
        save(config, weights(config), path)
    return build


def _save_sharded(path: Path) -> None:
    config = tiny_config()
    save(config, weights(config), path, max_shard_bytes=1024)


def clean_variants() -> list[CheckpointCase]:
    """The strict checkpoint of every builder variant is valid under strict."""
    cases = []
    for variant, config in variants.VARIANTS.items():
        algorithm = config["speculators_model_type"]
        description = f"the {variant} builder variant ({algorithm}) saved in bfloat16 with small weights"
        cases.append(CheckpointCase(f"ckpt.clean.{slug(variant)}", description, "strict", _saver(variant), None,
                                    (*page_anchors(algorithm, PRESENCE), "spec/layout.md#SFT-1")))
    return cases


def clean_sharded() -> list[CheckpointCase]:
    """A strict checkpoint split into shards with model.safetensors.index.json is valid."""
    return [CheckpointCase("ckpt.clean.sharded", "a one-head medusa checkpoint saved in two shards with an index",
                           "strict", _save_sharded, None, ("spec/algorithms/medusa.md", "spec/layout.md#SFT-5"))]


def _corpus_builder(name: str):
    return lambda path: variants.corpus_checkpoint(name, path)


def corpus() -> list[CheckpointCase]:
    """Every checkpoint the speculators library writes validates under compat (GEN-2), hazards as warnings."""
    return [CheckpointCase(f"ckpt.corpus.{corpus_id(name)}",
                           f"header-only fixture of the corpus checkpoint {name} (speculators library)", "compat",
                           _corpus_builder(name), None, ("spec/index.md#GEN-2", "spec/config.md#CFG-15"))
            for name in variants.corpus_names()]
