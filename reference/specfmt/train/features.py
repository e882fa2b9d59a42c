"""Online features: the verifier's aux states computed while training, from a cache's token documents, so that a
cache made with `--features online` holds documents.jsonl and index.json only (no multi-GB feature shards).

A sample is packed and featurized exactly as datagen would have stored it (specfmt.train.datagen.pack and
features, by a copy of the verifier in the cache's dtype), so training online equals training from cached
features of the same dtype.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from specfmt import files
from specfmt.nn import rms_norm
from specfmt.proposal import Sample
from specfmt.train.sources import Document
from specfmt.verifier import Verifier

MAX_DOCUMENTS_BYTES = 1 << 34  # documents.jsonl: token ids as JSON, far smaller than the features they replace


def as_sample(get, verifier: Verifier) -> tuple[Sample, torch.Tensor]:
    """A packed sample from its stored tensors (`get(key)`), with the normed states (the verifier's final norm
    over `last`), and the verifier's argmax."""
    last = get("last").float()
    normed = rms_norm(last, verifier.w["norm"].float(), verifier.cfg.eps)
    sample = Sample(get("tokens"), get("loss_mask").bool(), get("doc").long(), get("positions").long(),
                    get("aux").float(), last, normed)
    return sample, get("argmax").long()


def read_documents(root: Path) -> list[Document]:
    """documents.jsonl of a cache (bounded, a regular file), each line a Document."""
    raw = files.read_bytes(root / "documents.jsonl", MAX_DOCUMENTS_BYTES)
    try:
        return [Document(**json.loads(line)) for line in raw.decode("utf-8").splitlines()]
    except (ValueError, TypeError) as e:
        raise ValueError(f"{root / 'documents.jsonl'}: expected one document object a line ({e})") from None


def answered(caches: list[str]) -> set[tuple[int, ...]]:
    """The prompts, as token ids, that the datagen caches at `caches` hold: the prompt of each training document
    and each validation prompt."""
    from specfmt.train.datagen import read_index

    found: set[tuple[int, ...]] = set()
    for root in map(Path, caches):
        found |= {tuple(p) for p in read_index(root)["val_prompts"]}
        found |= {tuple(d.tokens[:d.prompt_len]) for d in read_documents(root) if d.prompt_len}
    return found


def in_dtype(w, dtype: torch.dtype):
    """The verifier's tensors by role (nested dicts and lists) with floating ones in `dtype`."""
    if isinstance(w, dict):
        return {k: in_dtype(v, dtype) for k, v in w.items()}
    if isinstance(w, list):
        return [in_dtype(v, dtype) for v in w]
    return w.to(dtype) if w.is_floating_point() else w


class OnlineFeatures:
    """The samples of a `--features online` cache, featurized when asked for."""

    def __init__(self, root: Path, index: dict):
        from specfmt.train.datagen import pack

        self.docs = read_documents(root)
        self.rows = pack(self.docs, index["options"]["seq_len"])
        self.aux_ids, self.dtype = tuple(index["aux_ids"]), getattr(torch, index["dtype"])
        self.verifier: Verifier | None = None

    def _verifier(self, verifier: Verifier) -> Verifier:
        """A copy of the training verifier in the cache dtype (what datagen featurized with), made once."""
        if self.verifier is None:
            same = verifier.dtype == self.dtype
            self.verifier = verifier if same else Verifier(verifier.config, in_dtype(verifier.w, self.dtype),
                                                           verifier.device, self.dtype)
        return self.verifier

    def sample(self, i: int, verifier: Verifier) -> tuple[Sample, torch.Tensor]:
        from specfmt.train.datagen import features

        run = self._verifier(verifier)
        parts = features(run, [self.docs[j] for j in self.rows[i]], self.aux_ids, self.dtype)
        run.truncate(0)
        return as_sample(lambda key: parts[key].clone(), verifier)  # made under inference_mode: autograd needs copies

    def token_counts(self, vocab_size: int) -> torch.Tensor:
        """How often each token id is supervised: [V]."""
        counts = torch.zeros(vocab_size, dtype=torch.long)
        for doc in self.docs:
            tokens = torch.tensor(doc.tokens)[torch.tensor(doc.supervised, dtype=torch.bool)]
            counts += torch.bincount(tokens, minlength=vocab_size)
        return counts
