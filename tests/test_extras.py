"""The extras table (specfmt.extras.NEEDS, which the README and the Install page show) says what the code needs:
each command or option run with its extra's packages made unimportable fails with one line naming that extra,
and the core commands run with every optional package absent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from specfmt.extras import COMMAND_EXTRA, EXTRAS, NEEDS, extra_for, install_line

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
OPTIONAL = sorted({m for modules in EXTRAS.values() for m in modules} | {"transformers", "numpy"})

# A child interpreter with some top-level modules unimportable (None in sys.modules), running `specfmt ARGV`.
CHILD = """
import sys, json
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from specfmt.cli import main
sys.exit(main(json.loads(sys.argv[2])))
"""


def run_without(modules, argv, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps(list(modules)), json.dumps(argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def argv_of(command: str, option: str, tmp: Path) -> list[str]:
    """A command line that reaches what the row says needs its extra, on the tiny examples."""
    verifier, draft = str(EXAMPLES / "tiny-verifier"), str(EXAMPLES / "eagle3-clean")
    ids = tmp / "ids.jsonl"
    ids.write_text('{"prompt_ids": [3, 4, 5]}\n', encoding="utf-8")
    texts = tmp / "texts.jsonl"
    texts.write_text('{"prompt": "w1 w5 w9"}\n', encoding="utf-8")
    return {
        ("validate", ""): ["validate", draft], ("validate", "--scan-values"): ["validate", draft, "--scan-values"],
        ("inspect", ""): ["inspect", draft], ("schema", ""): ["schema"],
        ("generate", ""): ["generate", "--verifier", verifier, "--draft", draft, "--prompt-ids", "3", "4"],
        ("generate", "--prompt"): ["generate", "--verifier", verifier, "--draft", draft, "--prompt", "w1 w5"],
        ("eval", ""): ["eval", "--verifier", verifier, "--draft", draft, "--prompts", str(ids)],
        ("eval", "--prompts (text or chat records)"): ["eval", "--verifier", verifier, "--draft", draft,
                                                       "--prompts", str(texts), "--max-new-tokens", "2"],
        ("eval", "--plot"): ["eval", "--verifier", verifier, "--draft", draft, "--prompts", str(ids),
                             "--plot", str(tmp / "p.png")],
        ("datagen", ""): ["datagen", "--verifier", verifier, "--data", str(texts), "--out", str(tmp / "cache")],
        ("train", ""): ["train", "eagle3", "--verifier", verifier, "--data", str(texts), "--out", str(tmp / "t")],
        ("convert", ""): ["convert", "--from", "speculators", draft, "--verifier", verifier, "--out",
                          str(tmp / "c")],
        ("upgrade", ""): ["upgrade", draft, "--out", str(tmp / "u")],
        ("export", ""): ["export", "--for", "vllm", draft, "--out", str(tmp / "e")],
        ("conformance-adapter", ""): ["conformance-adapter"],
    }[(command, option)]


def blocked_modules(extra: str, command: str) -> list[str]:
    """The modules that make the row's extra missing: for an option, those its command's own extra lacks."""
    own = set(EXTRAS.get(COMMAND_EXTRA[command], ()))
    if extra == "train":
        return ["torch"]
    return [m for m in EXTRAS[extra] if m not in own] or list(EXTRAS[extra])


@pytest.mark.parametrize("command, option, extra", [(c, o, e) for c, o, e, _ in NEEDS if e],
                         ids=[f"{c} {o}".strip() for c, o, e, _ in NEEDS if e])
def test_a_command_without_its_extra_says_in_one_line_which_extra_to_install(command, option, extra, tmp_path):
    done = run_without(blocked_modules(extra, command), argv_of(command, option, tmp_path), tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert install_line(extra) in done.stderr or f"specfmt[{extra}]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("command, option", [(c, o) for c, o, e, _ in NEEDS if not e])
def test_a_core_command_runs_with_no_optional_package_installed(command, option, tmp_path):
    done = run_without(OPTIONAL, argv_of(command, option, tmp_path), tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr[-2000:])


def test_the_cli_names_the_extra_that_the_table_gives_for_a_missing_module():
    assert extra_for("generate", "tokenizers") == "text"
    assert extra_for("datagen", "tokenizers.models") == "train"
    assert extra_for("eval", "matplotlib.figure") == "plots"
    assert extra_for("validate", "yaml") is None


def test_every_extra_in_the_table_is_an_extra_of_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = set(re.findall(r"^([a-z]+) = \[", pyproject.split("[project.optional-dependencies]")[1], re.M))
    assert set(EXTRAS) <= declared, set(EXTRAS) - declared


def test_the_cli_message_takes_its_extra_from_the_same_declaration():
    from specfmt.cli_common import missing_extra

    for command in COMMAND_EXTRA:
        for module in sorted({m for modules in EXTRAS.values() for m in modules}) + ["yaml"]:
            assert missing_extra(command, module) == extra_for(command, module), (command, module)
