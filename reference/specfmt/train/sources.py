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
- any other path: plain text, every token supervised, cut into documents of at most `max_len` tokens.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from specfmt.files import open_regular
from specfmt.text import Text, TextError


@dataclass
class Document:
    tokens: list[int]
    supervised: list[bool]  # the draft is trained to predict this token
    prompt_len: int = 0  # leading tokens that are the prompt (a held-out document's prompt is a validation prompt)


def is_held_out(key: str, fraction: float) -> bool:
    """A stable split: the same key is held out on every machine and in every run."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file (specfmt.files.open_regular: a FIFO or a device is refused, not waited on)."""
    with open_regular(path) as f:
        return f.read()


def read_text(path: Path) -> str:
    """The text of a data file (undecodable bytes replaced); a FIFO, a device or a directory is refused before it
    is read, since reading a FIFO waits for a writer forever."""
    return read_regular(path).decode("utf-8", errors="replace")


def text_documents(path: Path, text: Text, max_len: int) -> list[Document]:
    ids = text.encode(read_text(path))
    return [Document(ids[i:i + max_len], [True] * len(ids[i:i + max_len])) for i in range(0, len(ids), max_len)
            if len(ids[i:i + max_len]) > 2]


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
    return [record_document(where, record, text, max_len) for where, record in json_lines(path)]


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


def _modules(stdlib: Path, paths: list[Path]):
    """(module name, parsed tree) of each public module among `paths`, read with ast: nothing is imported; a file
    that does not parse is left out."""
    for path in paths:
        if path.stem.startswith("_") or path.stem in ("antigravity", "this"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        yield (path.stem if path.parent == stdlib else f"{path.parent.name}.{path.stem}"), tree


def _docstring_prompts(stdlib: Path) -> list[str]:
    """Questions about the public modules of the standard library: what each is for, and its functions and
    classes."""
    prompts = []
    for module, tree in _modules(stdlib, sorted(stdlib.glob("*.py"))):
        doc = (ast.get_docstring(tree) or "").strip().split("\n\n")[0]
        public = [n for n in tree.body if not getattr(n, "name", "_").startswith("_")]
        functions = [n.name for n in public if isinstance(n, ast.FunctionDef)]
        classes = [n.name for n in public if isinstance(n, ast.ClassDef)]
        prompts.append(f"What is the Python module `{module}` for? Answer in a short paragraph.")
        if doc:
            prompts.append(f"Explain this documentation of the Python module `{module}` in simple words:\n\n{doc}")
        prompts += [f"Write a short Python example that uses `{module}.{name}` and explain it." for name in
                    functions[:8]]
        prompts += [f"What is the class `{module}.{name}` used for? Give an example." for name in classes[:4]]
    return prompts


SKIPPED_PACKAGES = ("test", "idlelib", "lib2to3", "ensurepip", "turtledemo", "pydoc_data", "site-packages",
                    "__pycache__", "config-3")


def _api_prompts(stdlib: Path) -> list[str]:
    """Questions about every public function, class and method of the standard library's modules and packages:
    the templates differ from python-docs', so the two sets never share a prompt."""
    paths = sorted(stdlib.glob("*.py")) + sorted(p for p in stdlib.glob("*/*.py")
                                                 if not p.parent.name.startswith(SKIPPED_PACKAGES))
    prompts = []
    for module, tree in _modules(stdlib, paths):
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                prompts.append(f"How do I use `{module}.{node.name}` in Python? Show a short example.")
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                prompts.append(f"Explain the Python class `{module}.{node.name}` and show how to use it.")
                prompts += [f"What does the method `{module}.{node.name}.{m.name}` do? Give an example."
                            for m in node.body if isinstance(m, ast.FunctionDef) and not m.name.startswith("_")][:3]
    return prompts


def builtin_prompts(name: str) -> list[str]:
    """The named built-in prompt set, made from the Python installed on this machine: `python-docs` (pydoc
    topics and what each module is for) and `python-api` (its functions, classes and methods)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if name == "python-api":
        return _api_prompts(stdlib)
    if name != "python-docs":
        raise TextError(f"unknown built-in prompt set {name!r}; known: python-docs, python-api")
    from pydoc_data.topics import topics

    prompts = [template.format(topic) for topic in sorted(topics) for template in (
        "Explain the Python topic '{}' with a short example.", "What are common mistakes with '{}' in Python?")]
    return prompts + _docstring_prompts(stdlib)


def prompt_records(spec: str) -> list[tuple[str, object]]:
    """(where, record) of each prompt of `distill:...`: `path:line` of a file's records, or the built-in set's
    name and index."""
    source = spec.removeprefix("distill:")
    if source.startswith("builtin:"):
        prompts = builtin_prompts(source.removeprefix("builtin:"))
        return [(f"{source}#{i}", {"prompt": p}) for i, p in enumerate(prompts)]
    path = Path(source)
    if path.suffix in (".jsonl", ".json"):
        return json_lines(path)
    return [(f"{path}:{n}", {"prompt": line}) for n, line in enumerate(read_text(path).splitlines(), 1)
            if line.strip()]
