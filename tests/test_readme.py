"""README.md's Python blocks run as written, from the repository root's files, and print what their
`# prints:` comments say; its command lines name subcommands and options that exist."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

from links import relative_links
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


def readme_of(project: Path) -> str:
    """The long description a distribution publishes: the file its pyproject.toml names as `readme`."""
    name = re.search(r'^readme = "([^"]+)"', (project / "pyproject.toml").read_text(encoding="utf-8"), re.M)[1]
    return (project / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("project, name", [(ROOT, "specfmt"), (ROOT / "conformance", "specfmt-conformance")])
def test_a_pypi_page_has_no_repository_relative_link_and_shows_pip_install_and_a_command(project, name):
    text = readme_of(project)
    assert relative_links(text) == []
    assert f"pip install {name}\n" in text
    command = "specfmt validate " if name == "specfmt" else "specfmt-conformance run --adapter "
    assert command in text


def test_the_readme_extras_table_is_the_one_the_cli_declaration_generates():
    sys.path.insert(0, str(ROOT / "scripts"))
    from gen_docs_install import cpu_torch, extras_table

    assert extras_table(ROOT) in README
    assert cpu_torch(ROOT) in README
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in README


def test_the_house_style_that_tests_and_code_cite_is_in_the_repository():
    import subprocess

    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.toml", "*.cjs", "*.js"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    citing = [f for f in files if (ROOT / f).is_file() and "STYLE" + ".md" in (ROOT / f).read_text("utf-8")]
    assert citing == []
    assert "## 7. Contracts the code can check" in (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
