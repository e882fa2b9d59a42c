"""Where training documents come from: text files, JSONL conversations, and self-distillation, in which the
verifier answers prompts with the reference runtime (the way the speculators library regenerates responses
with vLLM). Every source yields Documents: token ids and which of them the draft is trained to predict.

A data spec (`--data`, repeatable):
- `PATH.jsonl`: one record per line, {"messages": [...]} (chat-templated; assistant turns supervised) or
  {"text": "..."} (every token supervised);
- `distill:PROMPTS`: a prompt file (JSONL records or one prompt per line, as specfmt.text.read_prompts reads it),
  answered by the verifier; the answer is supervised;
- `distill:builtin:python-docs`: prompts made from the documentation of the Python standard library on this
  machine (pydoc topics and module docstrings), so that every machine has data offline;
- `distill:builtin:python-api`: prompts about each public function, class and method of that standard library;
- `distill:builtin:python-code`: "complete this function" prompts, the signature and docstring of each public
  function and method of that standard library that has a docstring (specfmt.train.codeprompts);
- `distill:synth:N` or `distill:synth:N:SEED`: N user turns the verifier writes itself from its chat template's
  user prefix (Magpie; specfmt.train.synth), sampled with SEED (default 0);
- any other path: plain text, every token supervised, cut into documents of at most `max_len` tokens.

No source yields an evaluation prompt (specfmt.evalsets): a prompt, a conversation, a text record or a text chunk
that equals or nearly copies one (specfmt.neardup) is left out, so evaluation stays held out by construction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from specfmt.evalsets import CHAT_SEED, record_text, training_exclusions
from specfmt.files import open_regular
from specfmt.text import Text, TextError
from specfmt.train.stdlib_prompts import builtin_prompts


@dataclass
class Document:
    tokens: list[int]
    supervised: list[bool]  # the draft is trained to predict this token
    prompt_len: int = 0  # leading tokens that are the prompt (a held-out document's prompt is a validation prompt)


def is_held_out(key: str, fraction: float) -> bool:
    """A stable split: the same key is held out on every machine and in every run."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def spread(items: list, limit: int) -> list:
    """At most limit items taken evenly across the list, in order (0: all of them)."""
    if not limit or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file (specfmt.files.open_regular: a FIFO or a device is refused, not waited on)."""
    with open_regular(path) as f:
        return f.read()


def read_text(path: Path) -> str:
    """The text of a data file (undecodable bytes replaced); a FIFO, a device or a directory is refused before it
    is read, since reading a FIFO waits for a writer forever."""
    return read_regular(path).decode("utf-8", errors="replace")


def text_documents(path: Path, text: Text, max_len: int) -> list[Document]:
    """Chunks of max_len tokens of a text file, but for those that hold an evaluation prompt."""
    ids = text.encode(read_text(path))
    docs = [Document(ids[i:i + max_len], [True] * len(ids[i:i + max_len])) for i in range(0, len(ids), max_len)
            if len(ids[i:i + max_len]) > 2]
    return held_in(docs, [text.decode(d.tokens) for d in docs])


def json_lines(path: Path) -> list[tuple[str, object]]:
    """(`path:line`, value) of each non-blank line of a JSON-lines file; a line that is not JSON is refused."""
    values = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append((f"{path}:{n}", json.loads(line)))
        except ValueError as e:
            raise TextError(f"{path}:{n}: not JSON ({e})") from None
    return values


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_messages(where: str, messages: object) -> None:
    if not (isinstance(messages, list) and messages and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages)):
        raise TextError(f"{where}: messages must be a non-empty list of {{role, content}} string objects; "
                        f"found {_shown(messages)}")


def conversation_document(messages: list[dict], text: Text, max_len: int) -> Document:
    """The chat-rendered conversation; tokens inside an assistant turn (and its end marker) are supervised."""
    rendered = text.render_chat(messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message.get("role") == "assistant":
            start = len(text.render_chat(messages[:i], add_generation_prompt=True))
            spans.append((start, len(text.render_chat(messages[:i + 1], add_generation_prompt=False))))
    encoding = text.tokenizer.encode(rendered, add_special_tokens=False)
    supervised = [any(a <= lo < b for a, b in spans) for lo, _ in encoding.offsets]
    first = supervised.index(True) if True in supervised else len(supervised)
    return Document(encoding.ids[:max_len], supervised[:max_len], first)


def record_document(where: str, record: object, text: Text, max_len: int) -> Document:
    """The document of one training record, {"messages": [...]} or {"text": "..."}; a malformed one is refused
    with its file and line."""
    if isinstance(record, dict) and "messages" in record:
        _check_messages(where, record["messages"])
        try:
            doc = conversation_document(record["messages"], text, max_len)
        except TextError as e:
            raise TextError(f"{where}: {e}") from None
    elif isinstance(record, dict) and "text" in record:
        if not isinstance(record["text"], str):
            raise TextError(f"{where}: text must be a string; found {_shown(record['text'])}")
        ids = text.encode(record["text"])[:max_len]
        doc = Document(ids, [True] * len(ids))
    else:
        raise TextError(f"{where}: a record is a JSON object with messages or text; found {_shown(record)}")
    if not doc.tokens:
        raise TextError(f"{where}: the record encodes to no token")
    return doc


def jsonl_documents(path: Path, text: Text, max_len: int) -> list[Document]:
    """The documents of a JSONL file's records, but for those that hold an evaluation prompt."""
    records = json_lines(path)
    docs = [(record_document(where, record, text, max_len), record) for where, record in records]
    return [doc for doc, _ in held_in(docs, [record_text(record) for _, record in docs])]


def prompt_ids(where: str, record: object, text: Text, vocab_size: int) -> list[int]:
    """Token ids of one prompt record (as Text.prompt_ids reads it), checked: a JSON object, and prompt_ids a
    non-empty list of token ids below the verifier's vocabulary size."""
    if not isinstance(record, dict):
        raise TextError(f"{where}: a prompt record is a JSON object; found {_shown(record)}")
    if "prompt_ids" in record:
        ids = record["prompt_ids"]
        if not (isinstance(ids, list) and ids and all(type(i) is int and 0 <= i < vocab_size for i in ids)):
            raise TextError(f"{where}: prompt_ids must be a non-empty list of token ids in [0, {vocab_size}); "
                            f"found {_shown(ids)}")
    elif "messages" in record:
        _check_messages(where, record["messages"])
    elif "prompt" in record and not isinstance(record["prompt"], str):
        raise TextError(f"{where}: prompt must be a string; found {_shown(record['prompt'])}")
    try:
        ids = text.prompt_ids(record)
    except TextError as e:
        raise TextError(f"{where}: {e}") from None
    if not ids:
        raise TextError(f"{where}: the prompt encodes to no token")
    return ids


def held_in(found: list, texts: list[str]) -> list:
    """The items whose text is no evaluation prompt nor a near copy of one (specfmt.evalsets)."""
    exclusions = training_exclusions()
    return [item for item, words in zip(found, texts, strict=True) if exclusions.match(words) is None]


def synth_records(source: str, verifier, text: Text | None, report=lambda line: None) -> list[tuple[str, object]]:
    """The records of `synth:N[:SEED]`: N user turns the verifier writes (specfmt.train.synth), `report` given a
    line per round of sampling."""
    fields = source.split(":")
    if not (len(fields) in (2, 3) and all(f.isdigit() for f in fields[1:]) and int(fields[1]) > 0):
        raise TextError(f"distill:{source}: expected distill:synth:N or distill:synth:N:SEED (N > 0)")
    count, seed = int(fields[1]), int(fields[2]) if len(fields) == 3 else 0
    if seed == CHAT_SEED:
        raise TextError(f"distill:{source}: seed {CHAT_SEED} made the chat evaluation set; choose another")
    if verifier is None or text is None:
        raise TextError(f"distill:{source}: synthesized prompts need the verifier and its tokenizer")
    from specfmt.train.synth import synthesize

    prompts = synthesize(verifier, text, count, seed, exclude=training_exclusions(), report=report)
    return [(f"{source}#{i}", {"prompt": p}) for i, p in enumerate(prompts)]


def prompt_records(spec: str, verifier=None, text: Text | None = None,
                   report=lambda line: None) -> list[tuple[str, object]]:
    """(where, record) of each prompt of `distill:...`: `path:line` of a file's records, or the built-in or
    synthesized set's name and index; no evaluation prompt nor a near copy of one. `distill:synth:...` needs the
    verifier (a specfmt.verifier.Verifier) and its text, and tells `report` how its sampling goes."""
    source = spec.removeprefix("distill:")
    if source.startswith("builtin:"):
        prompts = builtin_prompts(source.removeprefix("builtin:"))
        found = [(f"{source}#{i}", {"prompt": p}) for i, p in enumerate(prompts)]
    elif source.startswith("synth:"):
        found = synth_records(source, verifier, text, report)
    elif (path := Path(source)).suffix in (".jsonl", ".json"):
        found = json_lines(path)
    else:
        found = [(f"{path}:{n}", {"prompt": line}) for n, line in enumerate(read_text(path).splitlines(), 1)
                 if line.strip()]
    return held_in(found, [record_text(record) for _, record in found])
