"""Text in and out of a verifier: its tokenizer.json, its chat template and end-of-sequence ids, and prompt
files. Needs the `tokenizers` package (pip install specfmt[text]); the chat template is rendered by jinja2 in
its immutable sandbox, as transformers renders it, so a template cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TextError(ValueError):
    """A verifier without what a text path needs, or a prompt record that cannot be read."""


def _read_json(path: Path) -> dict:
    """A JSON object of the verifier's directory through the one reader (specfmt.files: bounded, a regular file, so
    a FIFO is refused and never waited on); {} when absent, TextError (one line) when unreadable or no object."""
    from specfmt import files

    if not (path.exists() or path.is_symlink()):
        return {}
    try:
        value = files.read_json(path, path)
        if not isinstance(value, dict):
            raise files.not_object(path, "", value)
    except files.FileRefused as e:
        raise TextError(str(e)) from None
    return value


def _ids(value: Any) -> set[int]:
    """An eos_token_id field (an int, a list of ints or absent) as a set."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {value}
    return {v for v in value if isinstance(v, int)} if isinstance(value, list) else set()


@dataclass
class Text:
    tokenizer: Any  # tokenizers.Tokenizer
    chat_template: str | None = None
    eos_ids: set[int] = field(default_factory=set)
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ... for the template

    @staticmethod
    def from_verifier(path: str | Path) -> Text:
        """The tokenizer.json, tokenizer_config.json (chat template), generation_config.json and config.json
        (end-of-sequence ids) of a Hugging Face checkpoint directory."""
        root = Path(path)
        if not (root / "tokenizer.json").is_file():
            raise TextError(f"{root / 'tokenizer.json'} is absent: text needs the verifier's tokenizer")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            missing = "text needs the tokenizers package, which is not installed: pip install 'specfmt[text]'"
            raise TextError(missing) from None
        tok_config = _read_json(root / "tokenizer_config.json")
        eos = _ids(_read_json(root / "generation_config.json").get("eos_token_id"))
        eos |= _ids(_read_json(root / "config.json").get("eos_token_id"))
        specials = {k: v for k, v in tok_config.items() if k.endswith("_token") and isinstance(v, str)}
        return Text(Tokenizer.from_file(str(root / "tokenizer.json")), tok_config.get("chat_template"), eos, specials)

    def stop_ids(self) -> list[int]:
        """The end-of-sequence ids, the tokenizer's eos_token first and the rest ascending: decoding stops on the
        first."""
        first = self.tokenizer.token_to_id(self.special_tokens.get("eos_token", ""))
        return sorted(self.eos_ids, key=lambda i: (i != first, i))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The conversation as the verifier's chat template writes it."""
        if not self.chat_template:
            raise TextError("the verifier has no chat_template in tokenizer_config.json")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TextError(f"chat template: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        template = env.from_string(self.chat_template)
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt, **self.special_tokens)

    def prompt_ids(self, record: dict) -> list[int]:
        """Token ids of one prompt record: {"prompt_ids": [...]}, {"messages": [...]} (chat-templated), or
        {"prompt": "..."} (chat-templated as one user turn when the verifier has a template, unless "raw")."""
        if "prompt_ids" in record:
            return [int(i) for i in record["prompt_ids"]]
        if "messages" in record:
            return self.encode(self.render_chat(record["messages"]))
        if "prompt" in record:
            if self.chat_template and not record.get("raw", False):
                return self.encode(self.render_chat([{"role": "user", "content": record["prompt"]}]))
            return self.encode(record["prompt"])
        raise TextError(f"a prompt record needs prompt, messages or prompt_ids; found keys {sorted(record)}")


def read_prompts(path: str | Path) -> list[dict]:
    """Prompt records of a file: JSON lines (one record per line), or plain text (one prompt per line)."""
    p = Path(path)
    lines = [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if p.suffix not in (".jsonl", ".json"):
        return [{"prompt": line} for line in lines]
    records = []
    for n, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError as e:
            raise TextError(f"{p}:{n}: not JSON ({e})") from None
        if not isinstance(record, dict):
            raise TextError(f"{p}:{n}: a record is a JSON object")
        records.append(record)
    return records
