"""The config.json examples of the docs and the spec are valid documents.

A fenced block opened with ```json title="config.json"``` must be valid JSON and valid under the
strict profile; one titled "config.json (compat)" under the compatibility profile. Needs no site build,
so it runs in the default suite.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from specfmt.schemas import config_validator

ROOT = Path(__file__).resolve().parents[2]
OPENING = re.compile(r'^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*json\s+(?:[^\n]*\s)?'
                     r'title="config\.json(?P<compat> \(compat\))?"(?:\s[^\n]*)?$')
PROFILES = {False: "strict", True: "compat"}


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    profile: str
    text: str


def config_blocks(markdown: str) -> list[Block]:
    """The titled config.json blocks of a markdown text, indented ones (admonitions, tabs) included."""
    lines = markdown.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = OPENING.match(lines[index])
        index += 1
        if not opening:
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        start, body = index, []
        while index < len(lines) and not closing.match(lines[index]):
            body.append(lines[index].removeprefix(indent))
            index += 1
        index += 1
        blocks.append(Block(start, PROFILES[bool(opening["compat"])], "\n".join(body)))
    return blocks


def block_problems(block: Block) -> list[str]:
    try:
        document = json.loads(block.text)
    except json.JSONDecodeError as error:
        return [f"not JSON: {error.msg} (file line {block.line + error.lineno})"]
    return [f"{block.profile}: {error.json_path}: {error.message}"
            for error in config_validator(block.profile).iter_errors(document)]


def markdown_files() -> list[Path]:
    return sorted([*ROOT.glob("docs/**/*.md"), *ROOT.glob("spec/**/*.md")])


def test_every_config_example_in_the_docs_and_spec_is_valid_under_its_profile():
    problems = [f"{path.relative_to(ROOT)}:{block.line}: {problem}"
                for path in markdown_files()
                for block in config_blocks(path.read_text(encoding="utf-8"))
                for problem in block_problems(block)]
    assert not problems, f"{len(problems)} invalid config.json examples:\n" + "\n".join(problems)


def test_the_docs_and_spec_hold_config_examples():
    if not (ROOT / "docs" / "index.md").is_file():
        pytest.skip("docs/ has no pages yet (no docs/index.md)")
    count = sum(len(config_blocks(path.read_text(encoding="utf-8"))) for path in markdown_files())
    assert count >= 1, 'no ```json title="config.json"``` block in docs/ or spec/: the test above checks nothing'


SYNTHETIC = '''# Examples

```json title="config.json"
{"specfmt_version": "1.0"}
```

```json
{"not": "a titled example, ignored"}
```

!!! example

    ```json title="config.json (compat)"
    {"specfmt_version": "1.0",
    ```

```json title="config.json" linenums="1"
[1, 2]
```
'''


def test_config_blocks_are_found_with_their_line_and_profile():
    blocks = config_blocks(SYNTHETIC)

    assert [(block.line, block.profile) for block in blocks] == [(3, "strict"), (13, "compat"), (17, "strict")]
    assert blocks[1].text == '{"specfmt_version": "1.0",'


def test_a_valid_config_example_is_not_flagged_under_either_profile():
    document = (ROOT / "examples" / "eagle3-clean" / "config.json").read_text(encoding="utf-8")
    titles = ("config.json", "config.json (compat)")
    markdown = "\n".join(f'```json title="{title}"\n{document}\n```\n' for title in titles)

    blocks = config_blocks(markdown)

    assert [block.profile for block in blocks] == ["strict", "compat"]
    assert [block_problems(block) for block in blocks] == [[], []]


def test_an_invalid_config_example_is_flagged():
    problems = [block_problems(block) for block in config_blocks(SYNTHETIC)]

    assert problems[0] and all(problem.startswith("strict: ") for problem in problems[0])
    assert problems[1] == ["not JSON: Expecting property name enclosed in double quotes (file line 14)"]
    assert problems[2] and problems[2][0].startswith("strict: $: ")
