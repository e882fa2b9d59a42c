"""`specfmt datagen`: documents from the data specs, the verifier's features for them, cached on disk as
safetensors shards and reused by every epoch (and every run that trains on the same verifier and aux ids).

A cache directory holds `index.json` (format FORMAT: the verifier facts, aux ids, counts, sizes, the held-out
validation prompts and `features`), `documents.jsonl` (token ids and supervision of every document, so that features
can be recomputed for other aux ids) and, when `features` is "cached", `features-NNNNN.safetensors` (an "online"
cache has none: training computes them, specfmt.train.features). Sample i of a shard stores, over its T tokens
(whole documents packed into one row of at most seq_len):
- `i.tokens` I64 [T], `i.loss_mask` U8 [T], `i.doc` I32 [T] (document of each token), `i.positions` I32 [T];
- `i.aux` [T, A*H] and `i.last` [T, H] in the cache dtype (bfloat16): the verifier's aux states (CFG-9) and its
  last decoder output before the final norm;
- `i.argmax` I32 [T]: the verifier's greedy choice for the token after each position.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open

from specfmt import files
from specfmt.generate import generate_batch
from specfmt.proposal import Sample
from specfmt.publish import publish
from specfmt.safetensors_file import write_tensors
from specfmt.text import Text
from specfmt.train.answers import NOTHING_KEPT, Answers, answer_round, answers_dir, batch_key
from specfmt.train.features import OnlineFeatures, answered, as_sample
from specfmt.train.options import DataOptions
from specfmt.train.sources import (
    Document,
    is_held_out,
    jsonl_documents,
    prompt_ids,
    prompt_records,
    spread,
    text_documents,
)
from specfmt.verifier import Verifier

FORMAT = "specfmt-datagen/2"  # /2: index.json#/features, "cached" (feature shards) or "online" (none)
OLD_FORMATS = ("specfmt-datagen/1",)  # replaced by datagen, refused by train with the fix
SHARD_BYTES = 256 << 20
Report = Callable[[str], None]


def distilled(spec: str, verifier: Verifier, text: Text, opts: DataOptions, report: Report,
              stored: Answers = NOTHING_KEPT, excluded: set[tuple[int, ...]] = frozenset()):
    """The verifier's answers to the spec's training prompts, the held-out prompts' ids unanswered; a prompt in
    `excluded` (answered) is neither. Every record is checked before the first answer, so a bad line stops the
    command at once. Each batch is read from `stored` when a killed run answered it already; the others are
    answered ROUND batches at a time (answer_round) and stored at once."""
    train, held, left_out = [], [], 0
    for where, record in prompt_records(spec, verifier, text, report):
        ids = prompt_ids(where, record, text, verifier.vocab_size)
        if tuple(ids) in excluded or tuple(ids[:opts.seq_len // 2]) in excluded:  # as a document keeps its prompt
            left_out += 1
        else:
            (held if is_held_out(json.dumps(record, sort_keys=True), opts.held_out) else train).append(ids)
    if left_out:
        report(f"distill {spec}: {left_out} prompts left out, the caches {', '.join(opts.exclude)} hold them")
    train = spread(train, opts.limit)
    docs, key, reused = [], batch_key(fingerprint(verifier), str(verifier.dtype)[6:], spec, asdict(opts)), 0
    for first in range(0, len(train), ROUND * opts.batch):
        batches = {start: [ids[:opts.seq_len // 2] for ids in train[start:start + opts.batch]]
                   for start in range(first, min(first + ROUND * opts.batch, len(train)), opts.batch)}
        kept = {start: stored.get(key, start, prompts) for start, prompts in batches.items()}
        reused += sum(answers is not None for answers in kept.values())
        if None in kept.values():
            kept = answer_round(lambda prompts, generator: generate_batch(
                verifier, prompts, opts.max_new_tokens, text.eos_ids, opts.temperature, generator, rows=opts.batch),
                batches, kept, lambda *a: stored.put(key, *a), opts.seed * 1_000_003 + first)
        for start, prompts in batches.items():
            docs += [Document((p + a)[:opts.seq_len], ([False] * len(p) + [True] * len(a))[:opts.seq_len], len(p))
                     for p, a in zip(prompts, kept[start], strict=True)]
        report(f"distill {spec}: {min(first + ROUND * opts.batch, len(train))}/{len(train)} prompts answered"
               f"{f' ({reused} batches kept from an interrupted run)' if reused else ''}, "
               f"{sum(len(d.tokens) for d in docs)} tokens")
    return docs, held


ROUND = 4  # batches answered by one generate_batch call of opts.batch rows, a row that ends taking the next prompt


def collect(verifier: Verifier, text: Text, opts: DataOptions, report: Report, stored: Answers = NOTHING_KEPT):
    """(training documents, validation prompt ids) of every spec."""
    docs, val, excluded = [], [], answered(opts.exclude)
    for spec in opts.specs:
        if spec.startswith("distill:"):
            more, held = distilled(spec, verifier, text, opts, report, stored, excluded)
        else:
            path = Path(spec)
            found = jsonl_documents(path, text, opts.seq_len) if path.suffix == ".jsonl" else \
                text_documents(path, text, opts.seq_len)
            keep = [not is_held_out(f"{spec}#{i}", opts.held_out) for i in range(len(found))]
            more = [d for d, k in zip(found, keep, strict=True) if k]
            held = [d.tokens[:max(d.prompt_len, 32)] for d, k in zip(found, keep, strict=True) if not k]
        docs += more
        val += held
    return docs, val


def pack(docs: list[Document], seq_len: int) -> list[list[int]]:
    """Document indices per sample, in order, each sample holding whole documents of at most seq_len tokens."""
    rows, row, used = [], [], 0
    for i, doc in enumerate(docs):
        if row and used + len(doc.tokens) > seq_len:
            rows.append(row)
            row, used = [], 0
        row.append(i)
        used += len(doc.tokens)
    return rows + ([row] if row else [])


@torch.inference_mode()
def features(verifier: Verifier, docs: list[Document], aux_ids: tuple[int, ...], dtype: torch.dtype) -> dict:
    """The tensors of one packed sample: each document run alone from position 0."""
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("tokens", "loss_mask", "doc", "positions", "aux", "last",
                                                            "argmax")}
    for n, doc in enumerate(docs):
        verifier.truncate(0)
        out = verifier.forward(torch.tensor(doc.tokens), aux_ids)
        t = len(doc.tokens)
        parts["tokens"].append(torch.tensor(doc.tokens))
        parts["loss_mask"].append(torch.tensor(doc.supervised, dtype=torch.uint8))
        parts["doc"].append(torch.full((t,), n, dtype=torch.int32))
        parts["positions"].append(torch.arange(t, dtype=torch.int32))
        parts["aux"].append(out.aux.cpu().to(dtype))
        parts["last"].append(out.last.cpu().to(dtype))
        parts["argmax"].append(out.logits.argmax(-1).cpu().to(torch.int32))
    return {k: torch.cat(v) for k, v in parts.items()}


def write_cache(out: Path, verifier: Verifier, text: Text, aux_ids: tuple[int, ...], opts: DataOptions,
                report: Report, dtype: torch.dtype = torch.bfloat16, protect: tuple[Path, ...] = ()) -> Path:
    """Collect, featurize and publish the cache at `out` (specfmt.publish: staged beside it, then swapped in, so
    a kill leaves the old cache or the new one); its index.json is written last. The answers are kept in
    `<out>.answers` as they are made (specfmt.train.answers), so a killed run continues where it stopped."""
    stored = Answers(answers_dir(Path(out)))
    docs, val = collect(verifier, text, opts, report, stored)
    if not docs:
        raise ValueError(f"the data specs {opts.specs} yield no training document")

    def write(staging: Path) -> None:
        with open(staging / "documents.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(asdict(d)) + "\n" for d in docs)
        shards, shard, size, rows = [], {}, 0, pack(docs, opts.seq_len)
        for i, row in enumerate(rows if opts.features == "cached" else []):
            for key, tensor in features(verifier, [docs[j] for j in row], aux_ids, dtype).items():
                shard[f"{i}.{key}"] = tensor
                size += tensor.numel() * tensor.element_size()
            if size >= SHARD_BYTES or i == len(rows) - 1:
                shards.append(f"features-{len(shards):05d}.safetensors")
                write_tensors(staging / shards[-1], shard, {"format": "pt"})
                shard, size = {}, 0
            report(f"features: {i + 1}/{len(rows)} samples")
        index = {"format": FORMAT, "features": opts.features, "verifier": fingerprint(verifier),
                 "aux_ids": list(aux_ids), "dtype": str(dtype)[6:], "samples": len(rows), "documents": len(docs),
                 "tokens": sum(len(d.tokens) for d in docs), "supervised": sum(sum(d.supervised) for d in docs),
                 "shards": shards, "val_prompts": val, "options": asdict(opts),
                 "bytes": sum((staging / s).stat().st_size for s in shards)}
        (staging / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")

    published = publish(out, write, protect=protect, overwrite=True)
    stored.remove()
    return published


def is_cache(path: Path, current: bool = False) -> bool:
    """Whether `path` is a datagen cache directory (what `specfmt datagen` writes, and may replace: one of an
    older format too, unless `current`)."""
    try:
        index = files.read_json(path / "index.json")
    except OSError:
        return False
    return isinstance(index, dict) and index.get("format") in ((FORMAT,) if current else (FORMAT, *OLD_FORMATS))


def fingerprint(verifier: Verifier) -> dict:
    """What a cache must agree on with the verifier that trains from it."""
    c = verifier.config
    return {k: c[k] for k in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")}


INDEX_KEYS = {"format": str, "features": str, "verifier": dict, "aux_ids": list, "samples": int, "documents": int,
              "tokens": int, "supervised": int, "bytes": int, "shards": list, "val_prompts": list, "options": dict}


def read_index(root: Path) -> dict:
    """The index.json of a cache (specfmt.files.read_json: bounded, a regular file), checked: a JSON object of
    the FORMAT with each key of its type."""
    index = files.read_json(root / "index.json")
    if isinstance(index, dict) and index.get("format") in OLD_FORMATS:
        raise ValueError(f"{root} is a {index['format']} cache, which this specfmt no longer reads: rerun "
                         f"`specfmt datagen` to rebuild it as {FORMAT}")
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ValueError(f"{root} is not a {FORMAT} cache: its index.json names no such format")
    for key, kind in INDEX_KEYS.items():
        if not isinstance(index.get(key), kind) or isinstance(index.get(key), bool):
            raise ValueError(f"{root / 'index.json'}#/{key}: expected a JSON {kind.__name__}, found "
                             f"{json.dumps(index.get(key))[:40]}")
    if index["features"] not in ("cached", "online"):
        raise ValueError(f"{root / 'index.json'}#/features: expected \"cached\" or \"online\", found "
                         f"{json.dumps(index['features'])[:40]}")
    return index


def shard_path(root: Path, i: int, name: object) -> Path:
    """Shard i the index names, refused unless it is a regular file inside the cache: an index naming `../..`
    or an absolute path would make training read outside it (index.path), a FIFO would block it forever, and a
    truncated shard or one whose header lies is refused before safetensors maps it."""
    path = files.resolve_inside(root, name, root / "index.json", f"/shards/{i}")
    files.stored_names(path, path)  # a regular file whose header the bounded parser accepts
    return path


class Cache:
    """A datagen directory, read lazily: samples come off memory-mapped shards as float32 features."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.index = read_index(self.path)
        self.files = [safe_open(str(shard_path(self.path, i, s)), "pt") for i, s in enumerate(self.index["shards"])]
        self.where = {int(k.split(".")[0]): f for f in self.files for k in f.keys() if k.endswith(".tokens")}
        self.online = OnlineFeatures(self.path, self.index) if self.index["features"] == "online" else None
        if self.online:
            self.where = dict.fromkeys(range(len(self.online.rows)))

    def __len__(self) -> int:
        return self.index["samples"]

    def check(self, verifier: Verifier, aux_ids: tuple[int, ...]) -> list[str]:
        """Why this cache cannot train a draft of `aux_ids` for `verifier` (empty: it can)."""
        out = []
        if self.index["verifier"] != fingerprint(verifier):
            out.append(f"the cache was made for the verifier {self.index['verifier']}, not {fingerprint(verifier)}")
        if tuple(self.index["aux_ids"]) != tuple(aux_ids):
            out.append(f"the cache holds aux ids {self.index['aux_ids']}, the draft reads {list(aux_ids)}")
        if sorted(self.where) != list(range(self.index["samples"])):
            out.append(f"index.json#/samples: expected the {len(self.where)} samples its shards hold, found "
                       f"{self.index['samples']}")
        vocab = verifier.vocab_size
        if not all(isinstance(p, list) and p and all(type(t) is int and 0 <= t < vocab for t in p)
                   for p in self.index["val_prompts"]):
            out.append(f"index.json#/val_prompts: expected non-empty lists of token ids in [0, {vocab})")
        return out

    def sample(self, i: int, verifier: Verifier) -> tuple[Sample, torch.Tensor]:
        """Sample i with its normed states (the verifier's final norm over `last`), and the verifier's argmax;
        computed now in an online cache."""
        if self.online:
            return self.online.sample(i, verifier)
        return as_sample(lambda key: self.where[i].get_tensor(f"{i}.{key}"), verifier)

    def token_counts(self, vocab_size: int) -> torch.Tensor:
        """How often each token id is supervised over the whole cache: [V]."""
        if self.online:
            return self.online.token_counts(vocab_size)
        counts = torch.zeros(vocab_size, dtype=torch.long)
        for i, f in self.where.items():
            tokens, mask = f.get_tensor(f"{i}.tokens"), f.get_tensor(f"{i}.loss_mask").bool()
            counts += torch.bincount(tokens[mask], minlength=vocab_size)
        return counts


class Caches:
    """Several caches of the same verifier and aux ids read as one: samples numbered in order, counts summed,
    validation prompts concatenated. Each part keeps its own index (its options, shards); `index` holds what
    the whole has."""

    def __init__(self, paths: list[str | Path]):
        self.parts = [Cache(p) for p in paths]
        self.offsets = [sum(len(c) for c in self.parts[:i]) for i in range(len(self.parts))]
        first = self.parts[0].index
        self.index = {"verifier": first["verifier"], "aux_ids": first["aux_ids"],
                      "val_prompts": [p for c in self.parts for p in c.index["val_prompts"]],
                      **{k: sum(c.index[k] for c in self.parts) for k in ("samples", "documents", "tokens",
                                                                         "supervised", "bytes")}}

    def __len__(self) -> int:
        return sum(len(c) for c in self.parts)

    def check(self, verifier: Verifier, aux_ids: tuple[int, ...]) -> list[str]:
        return [f"{c.path}: {problem}" for c in self.parts for problem in c.check(verifier, aux_ids)]

    def sample(self, i: int, verifier: Verifier) -> tuple[Sample, torch.Tensor]:
        part = max(j for j, offset in enumerate(self.offsets) if offset <= i)
        return self.parts[part].sample(i - self.offsets[part], verifier)

    def token_counts(self, vocab_size: int) -> torch.Tensor:
        return sum(c.token_counts(vocab_size) for c in self.parts)
