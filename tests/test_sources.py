"""Training prompt sources: the stdlib code prompts, the self-synthesized (Magpie) prompts on the tiny verifier,
and the near-copy rule that keeps evaluation prompts out of every source (specfmt.neardup, specfmt.evalsets)."""

from __future__ import annotations

import json

import pytest

from builders import write_verifier
from specfmt import evalsets
from specfmt.neardup import NearIndex, shingles
from specfmt.text import Text, TextError
from specfmt.train import synth
from specfmt.train.sources import jsonl_documents, prompt_records
from specfmt.train.stdlib_prompts import BUILTIN, CODE_TEMPLATE, _code_prompts, builtin_prompts
from specfmt.verifier import Verifier

# A chat template in the tiny tokenizer's words: w1 opens a turn, w2 ends it (so w2 ends a synthesized turn).
TEMPLATE = ("{% for m in messages %}w1 w3 {{ m['content'] }} w2 {% endfor %}"
            "{% if add_generation_prompt %}w1 w4 {% endif %}")

MODULE = '''"""A module."""

import functools


def add(a, b=1):
    """Add two numbers.

    Returns a + b.
    """
    return a + b


@functools.cache
def cached(x):
    """Return x, remembered for later calls."""
    return x


def _private(x):
    """A private function is left out of the prompts."""


def short(x):
    """Too short."""


class Box:
    def open(self, lid: int) -> bool:
        """Open the box and say whether it was shut."""
        return True
'''


def test_code_prompts_are_signature_and_docstring_of_documented_public_functions(tmp_path):
    (tmp_path / "boxes.py").write_text(MODULE)
    prompts = _code_prompts(tmp_path)
    assert prompts == _code_prompts(tmp_path)
    assert prompts == [CODE_TEMPLATE.format(body) for body in (
        'def add(a, b=1):\n    """Add two numbers.\n\n    Returns a + b.\n    """',
        'def cached(x):\n    """Return x, remembered for later calls."""',
        'def open(self, lid: int) -> bool:\n    """Open the box and say whether it was shut."""')]


def test_the_builtin_sets_are_one_registry_and_an_unknown_one_is_one_line():
    assert list(BUILTIN) == ["python-docs", "python-api", "python-code"]
    with pytest.raises(TextError, match="^unknown built-in prompt set 'nope'; known: python-docs, python-api, "
                                        "python-code$"):
        builtin_prompts("nope")


def test_template_siblings_are_not_near_copies_but_a_reworded_or_quoted_prompt_is():
    index = NearIndex(["Explain the Python topic 'for' with a short example.",
                       "Write a function that returns the sum of the squares of the odd numbers of a list of ints."])
    assert index.match("Explain the Python topic 'if' with a short example.") is None
    assert index.match("EXPLAIN the python topic  FOR, with a short example!") is not None
    assert index.match("Write a function that returns the sum of the cubes of the odd numbers of a list of ints.")
    assert index.match("Please help. Write a function that returns the sum of the squares of the odd numbers of a "
                       "list of ints. Use Python 3 and no imports, and explain each line.") is not None
    assert index.match("Write a haiku about the sea.") is None
    assert shingles("") == frozenset()


@pytest.fixture
def eval_prompts(monkeypatch):
    """The evaluation sets replaced by two known prompts (the real ones are tested in test_evalsets)."""
    fake = {"a": lambda: [{"prompt": "What are common mistakes with 'bitwise' in Python?"}],
            "b": lambda: [{"prompt": "w9 w10 w11 w12 w13 w14 w15 w16 w17 w18"}]}
    monkeypatch.setattr(evalsets, "EVALSETS", fake)
    evalsets.training_exclusions.cache_clear()
    yield [r["prompt"] for f in fake.values() for r in f()]
    evalsets.training_exclusions.cache_clear()


def test_a_prompt_file_loses_its_evaluation_prompts_and_their_near_copies(tmp_path, eval_prompts):
    path = tmp_path / "prompts.txt"
    path.write_text("What are common mistakes with 'bitwise' in Python?\nwhat are common mistakes with BITWISE in "
                    "python\nWhat are common mistakes with 'lambda' in Python?\nw9 w10 w11 w12 w13 w14 w15 w16 w17 "
                    "w18 w19 w20 w21\nw5 w6 w7\n")
    kept = [record["prompt"] for _, record in prompt_records(f"distill:{path}")]
    assert kept == ["What are common mistakes with 'lambda' in Python?", "w5 w6 w7"]


def test_jsonl_training_records_holding_an_evaluation_prompt_are_left_out(tmp_path, eval_prompts):
    verifier_dir = write_verifier(tmp_path / "verifier", tokenizer=True)
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (
        {"text": "w1 w2 w3"}, {"text": eval_prompts[1]}, {"text": "w0 " + eval_prompts[1] + " w3 w4"})))
    docs = jsonl_documents(path, Text.from_verifier(verifier_dir), 64)
    assert [d.tokens for d in docs] == [[1, 2, 3]]


@pytest.fixture(scope="module")
def chat_verifier(tmp_path_factory):
    path = write_verifier(tmp_path_factory.mktemp("synth") / "verifier", tokenizer=True)
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE}))
    return Verifier.from_pretrained(path), Text.from_verifier(path)


@pytest.fixture
def short_turns(monkeypatch):
    """Turns of 1 to 12 tokens, so the random tiny verifier ends enough of them (w2 has probability ~1/128)."""
    monkeypatch.setattr(synth, "MIN_TOKENS", 1)
    monkeypatch.setattr(synth, "MAX_TOKENS", 12)


def test_the_user_prefix_and_end_of_turn_come_from_the_chat_template(chat_verifier):
    _, text = chat_verifier
    assert synth.user_turn(text) == ([1, 3], {2})


def test_synthesized_prompts_are_the_same_for_a_seed_and_others_for_another(chat_verifier, short_turns):
    verifier, text = chat_verifier
    lines = []
    first = synth.synthesize(verifier, text, 4, seed=1, report=lines.append)
    assert len(first) == 4 and all(p.startswith("w") for p in first)
    assert lines[-1] == f"synth: 4/4 prompts kept of {16 * len(lines)} sampled"
    assert synth.synthesize(verifier, text, 4, seed=1) == first
    assert set(synth.synthesize(verifier, text, 4, seed=2)).isdisjoint(first)
    index = NearIndex()
    for p in first:
        assert index.match(p) is None
        index.add(p)


def test_synthesized_prompts_leave_out_excluded_ones(chat_verifier, short_turns):
    verifier, text = chat_verifier
    first = synth.synthesize(verifier, text, 4, seed=1)
    again = synth.synthesize(verifier, text, 4, seed=1, exclude=NearIndex(first[:2]))
    assert again[:2] == first[2:] and not set(again) & set(first[:2])


def test_a_synth_spec_is_answered_with_records_and_a_bad_one_is_one_line(chat_verifier, short_turns, eval_prompts):
    verifier, text = chat_verifier
    lines = []
    records = prompt_records("distill:synth:3:1", verifier, text, lines.append)
    assert [where for where, _ in records] == ["synth:3:1#0", "synth:3:1#1", "synth:3:1#2"]
    assert lines and lines[-1].startswith("synth: 3/3 prompts kept of ")  # datagen shows the sampling's progress
    assert [r["prompt"] for _, r in records] == synth.synthesize(verifier, text, 3, seed=1)
    for spec, message in (("distill:synth:x", "expected distill:synth:N or distill:synth:N:SEED"),
                          ("distill:synth:0", "expected distill:synth:N"),
                          (f"distill:synth:5:{evalsets.CHAT_SEED}", "made the chat evaluation set"),
                          ("distill:synth:5", "need the verifier and its tokenizer")):
        with pytest.raises(TextError, match=message):
            prompt_records(spec, *((verifier, text) if spec != "distill:synth:5" else ()))


def test_the_module_command_prints_the_synthesized_prompts_as_json_lines(chat_verifier, short_turns, tmp_path,
                                                                         capsys):
    import torch

    verifier, text = chat_verifier
    path = write_verifier(tmp_path / "verifier", tokenizer=True)
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE}))
    threads = torch.get_num_threads()
    try:
        synth.main(["--verifier", str(path), "--count", "2", "--seed", "1", "--dtype", "float32"])
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [{"prompt": p} for p in
                                                               synth.synthesize(verifier, text, 2, seed=1)]
    assert err.splitlines()[-1].startswith("synth: 2/2 prompts kept of ")


def test_datagen_answers_a_synth_spec_with_the_verifier_it_was_given(chat_verifier, short_turns):
    from specfmt.train.datagen import DataOptions, collect

    verifier, text = chat_verifier
    opts = DataOptions(["distill:synth:3:1"], seq_len=64, max_new_tokens=2, batch=4, held_out=0.0)
    docs, _ = collect(verifier, text, opts, lambda line: None)
    prompts = [text.prompt_ids({"prompt": p}) for p in synth.synthesize(verifier, text, 3, seed=1)]
    assert [d.tokens[:d.prompt_len] for d in docs] == prompts
