"""The strict reader's answer for a document that repeats keys (spec/layout.md SFT-2, spec/index.md GEN-7): the
first repeated member in the text, named by its path, and only in a document that is otherwise JSON within the
nesting bound."""

import pytest

from specfmt import json_text
from specfmt.schemas import SAFETENSORS

DEEP = "[" * SAFETENSORS["json_max_depth"] + "]" * SAFETENSORS["json_max_depth"]  # 64 arrays: 65 levels in an object


def refusal(text: str) -> tuple[str, tuple[str, ...]]:
    with pytest.raises(json_text.JsonProblem) as e:
        json_text.parse(text.encode(), "header")
    return e.value.kind, e.value.path


def test_the_first_repeated_member_in_the_text_is_named_not_the_first_object_to_close():
    assert refusal('{"a": 1, "a": 2, "c": {"x": 1, "x": 2}}') == ("duplicate_key", ("a",))
    assert refusal('{"b": 1, "a": 2, "a": 3, "b": 4}') == ("duplicate_key", ("a",))


def test_a_key_repeated_inside_an_entry_is_named_by_its_path_from_the_root():
    assert refusal('{"t": {"dtype": "F32", "dtype": "F16"}}') == ("duplicate_key", ("t", "dtype"))
    assert refusal('{"t": [{"k": 1}, {"k": 1, "k": 2}]}') == ("duplicate_key", ("t", "1", "k"))


def test_a_document_too_deep_or_not_json_is_json_whatever_keys_it_repeats():
    assert refusal('{"a": 1, "a": 2, "d": ' + DEEP + "}") == ("json", ())
    assert refusal('{"a": {"x": 1, "x": 2}, ') == ("json", ())


def test_a_value_that_a_repeated_key_replaces_still_counts_toward_the_nesting_bound():
    assert refusal('{"d": ' + DEEP + ', "d": 1}') == ("json", ())


def test_strings_that_look_like_keys_are_not_keys():
    assert json_text.parse(b'{"a": "a", "b": ["a", "a:"], "c": {"a": 1}}', "header") == {
        "a": "a", "b": ["a", "a:"], "c": {"a": 1}}
