"""Which shard headers SFT-5 compares the index with (issue 23 item 1): a listed tensor absent from a shard header
that was read is index.mismatch even when that header holds no tensor (ckpt.index.mismatch-listed-absent); a
listed tensor whose entry is malformed counts as stored; a header that could not be read gives no index.mismatch.
Built on the two-shard eagle3 checkpoint of ckpt_bytes, its second shard replaced by a hand-made header."""

from __future__ import annotations

from pathlib import Path

from conformance.generators.ckpt import CheckpointCase, write_raw
from conformance.generators.ckpt_bytes import SHAPE, SHARDS, T1, _sharded

SFT_5 = ("spec/layout.md#SFT-5",)


def _second_shard(raw: dict | bytes):
    """A build: the sharded checkpoint with SHARDS[1] (which the index names for T1) holding `raw` and no data."""
    def edit(path: Path, index: dict) -> None:
        write_raw(path / SHARDS[1], raw, 0)
    return _sharded(edit)


def shard_cases() -> list[CheckpointCase]:
    """A listed tensor stored malformed, and one listed in a shard whose header is not JSON (SFT-5, LAY-3)."""
    malformed = {"__metadata__": {"format": "pt"}, T1: {"dtype": "F32", "shape": SHAPE}}
    return [
        CheckpointCase("ckpt.index.listed-entry-malformed", "weight_map places a tensor in a shard whose entry for it "
                       "lacks data_offsets: header.entry only; the malformed entry counts as stored, so it is neither "
                       "index.mismatch nor layout.missing", "compat", _second_shard(malformed), "header.entry", SFT_5),
        CheckpointCase("ckpt.index.listed-in-unread-shard", "weight_map places a tensor in a shard whose header is not "
                       "JSON: header.json only; a header that could not be read gives no index.mismatch, and binding "
                       "is skipped (LAY-3)", "compat", _second_shard(b'{"not json'), "header.json", SFT_5),
    ]
