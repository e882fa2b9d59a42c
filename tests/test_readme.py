"""README.md's Python blocks run as written, from the repository root's files, and print what their
`# prints:` comments say; its command lines name subcommands and options that exist."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from specfmt.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
SHELL = "\n".join(re.findall(r"```sh\n(.*?)```", README, re.S))


def test_the_readme_has_python_blocks_to_run():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_python_block_runs_and_prints_what_its_comments_say(index, tmp_path, monkeypatch):
    for top in ("examples", "conformance"):  # the paths the blocks name, from a scratch directory
        (tmp_path / top).symlink_to(ROOT / top)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})
    for promised in re.findall(r"# prints: (.*)", BLOCKS[index]):
        assert promised.strip() in out.getvalue(), (promised, out.getvalue())


def test_every_specfmt_command_line_in_the_readme_names_a_real_subcommand_and_options():
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    lines = [line.split("#")[0] for line in SHELL.replace("\\\n", " ").splitlines()]
    commands = [line.split() for line in lines if line.strip().startswith("specfmt ")]
    assert commands
    for words in commands:
        sub = subcommands[words[1]]
        known = {opt for action in sub._actions for opt in action.option_strings}
        options = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", " ".join(words[2:])))
        assert options <= known, (words[1], options - known)
