"""The generated command-line page shows argparse's help as written: Markdown characters in a help text (the `*`
of `layers.0.*`, the `_` of `speculative_tokens`, brackets, `<`) are escaped, so no help renders as italics, a
link or an HTML tag. Reads the committed page; no built site needed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")


def description_cells() -> list[str]:
    rows = [line for line in PAGE.splitlines() if line.startswith("| `") and line.endswith(" |")]
    return [re.split(r"(?<!\\)\|", row)[-2] for row in rows]


def test_the_cli_page_has_argument_rows():
    assert len(description_cells()) > 40


def test_no_help_text_on_the_cli_page_holds_an_unescaped_markdown_character():
    for text in description_cells():
        assert not re.search(r"(?<!\\)[*_`\[\]<]", text), text


def test_the_star_of_a_tensor_name_pattern_is_shown_as_a_star():
    assert "layers.0.\\*" in PAGE


def test_an_option_whose_default_is_suppressed_shows_no_default_and_a_zero_default_shows():
    import argparse
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from gen_docs import argument_rows

    parser = argparse.ArgumentParser()
    parser.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help="print it")
    parser.add_argument("--seed", type=int, default=0, help="the seed")
    rows = argument_rows(parser)
    assert "| `--traceback` |  |  | print it |" in rows
    assert "| `--seed` |  | `0` | the seed |" in rows
