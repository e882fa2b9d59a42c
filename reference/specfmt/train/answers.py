"""Datagen's finished answers, kept across runs so that a killed datagen continues where it stopped.

Each batch of self-distilled answers is published (specfmt.publish: staged, fsynced, renamed) as its own
directory `<out>.answers/<spec tag>-<first prompt index>/answers.json` the moment it is generated, with the key
of everything that decides it (the verifier's fingerprint and dtype, the data spec, the answer options) and its
prompts. A datagen with the same key reads a stored batch back instead of answering it again; a batch whose
key or prompts differ is answered again and replaced. The directory goes once the cache is published.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from specfmt import files
from specfmt.publish import publish

FORMAT = "specfmt-answers/1"
ANSWER_OPTIONS = ("seq_len", "max_new_tokens", "batch", "temperature", "held_out", "limit", "seed")
MAX_BYTES = 1 << 30  # one batch's JSON: prompts and answers of at most seq_len tokens each


def answers_dir(out: Path) -> Path:
    """Where the finished answers of the cache `out` wait until it is published."""
    return out.with_name(f"{out.name}.answers")


def batch_key(verifier_facts: dict, dtype: str, spec: str, options: dict) -> dict:
    """What decides a batch's answers besides its prompts."""
    return {"verifier": verifier_facts, "dtype": dtype, "spec": spec,
            **{name: options[name] for name in ANSWER_OPTIONS}}


class Answers:
    """The stored batches under `root` (None: nothing is kept, every batch is answered)."""

    def __init__(self, root: Path | None):
        self.root = root

    def _path(self, key: dict, start: int) -> Path:
        tag = hashlib.sha256(key["spec"].encode()).hexdigest()[:12]
        return self.root / f"{tag}-{start:08d}"

    def get(self, key: dict, start: int, prompts: list[list[int]]) -> list[list[int]] | None:
        """The stored answers of the batch starting at prompt `start`, or None when none match key and prompts."""
        if self.root is None:
            return None
        try:
            stored = json.loads(files.read_bytes(self._path(key, start) / "answers.json", MAX_BYTES))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or (stored.get("format"), stored.get("key"), stored.get("prompts")) != (
                FORMAT, key, prompts):
            return None
        answers = stored.get("answers")
        ok = isinstance(answers, list) and len(answers) == len(prompts) and all(
            isinstance(a, list) and all(type(t) is int for t in a) for a in answers)
        return answers if ok else None

    def put(self, key: dict, start: int, prompts: list[list[int]], answers: list[list[int]]) -> None:
        """Publish the batch's answers (a kill leaves the batch whole or absent)."""
        if self.root is None:
            return
        record = {"format": FORMAT, "key": key, "prompts": prompts, "answers": answers}

        def write(staging: Path) -> None:
            (staging / "answers.json").write_text(json.dumps(record) + "\n", encoding="utf-8")

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            publish(self._path(key, start), write, overwrite=True)
        except BaseException:
            if not any(self.root.iterdir()):  # nothing kept yet: leave no empty directory behind
                self.root.rmdir()
            raise

    def remove(self) -> None:
        """Forget every stored batch (the cache that used them is published)."""
        if self.root is not None and self.root.is_dir() and not self.root.is_symlink():
            shutil.rmtree(self.root)


def answer_round(generate, batches: dict, kept: dict, put, seed: int) -> dict:
    """The answers of every batch of a round (first prompt index -> prompts), all its prompts answered by one
    `generate(prompts, generator)` whose sampling is seeded by `seed` (the round's, so that a resumed run draws
    what an uninterrupted one does); the batches not `kept` are stored, `put(start, prompts, answers)`."""
    answers = generate([p for prompts in batches.values() for p in prompts], torch.Generator().manual_seed(seed))
    out = {}
    for start, prompts in batches.items():
        out[start], answers = answers[:len(prompts)], answers[len(prompts):]
        if kept[start] is None:
            put(start, prompts, out[start])
        else:
            out[start] = kept[start]
    return out


NOTHING_KEPT = Answers(None)  # datagen without a cache directory: every batch is answered, none is stored
