"""The layout expression language: parsed by hand, never eval'd."""

import pytest

from specfmt.expr import ExprError, evaluate

CONFIG = {"hidden_size": 32, "ids": [1, 3, 5], "none": None, "flag": True, "kind": "qwen3",
          "transformer_layer_config": {"hidden_size": 64, "num_attention_heads": 4}}


@pytest.mark.parametrize(("text", "value"), [
    ("2 * hidden_size", 64),
    ("transformer_layer_config.hidden_size // transformer_layer_config.num_attention_heads", 16),
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 // 2 - -1", 4),
    ("len(ids)", 3),
    ("len(missing) ?? 3", 3),
    ("len(ids) ?? 3", 3),
    ("target ?? H", 32),
    ("none ?? 5", 5),
    ("flag and hidden_size > 16", True),
    ("not flag or kind == 'qwen3'", True),
    ("kind != 'llama' and len(ids) >= 3", True),
    ("8 if hidden_size > 16 else 4", 8),
    ("missing.deeply.nested", None),
])
def test_expressions_evaluate_to_their_value(text, value):
    assert evaluate(text, {"H": 32}, CONFIG) == value


def test_scope_names_shadow_config_keys_but_not_dotted_paths():
    assert evaluate("hidden_size", {"hidden_size": 1}, CONFIG) == 1
    assert evaluate("transformer_layer_config.hidden_size", {"transformer_layer_config": 0}, CONFIG) == 64


@pytest.mark.parametrize("text", [
    "__import__('os')",  # no calls but len
    "hidden_size +",
    "(1",
    "1 / 2",
    "1 // 0",
    "kind + 1",
    "flag + 1",
    "not hidden_size",
    "ids * 2",
    "len(hidden_size)",
    "1 if hidden_size else 2",
    "a @ b",
])
def test_bad_expressions_raise_expr_error(text):
    with pytest.raises(ExprError):
        evaluate(text, {}, CONFIG)
