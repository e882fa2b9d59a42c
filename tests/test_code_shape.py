"""Size and binding rules of the runtime (CONTRIBUTING.md section 2; issue acceptance): each algorithm module
is under 300 lines and reads weights only by role; the generate loop is one function of <= 60 lines."""

import ast
import re
from pathlib import Path

import pytest

from specfmt.algorithms import ALGORITHMS

PACKAGE = Path(__file__).resolve().parent.parent / "reference" / "specfmt"
MODULES = sorted((PACKAGE / "algorithms").glob("*.py"))


def test_every_algorithm_has_its_own_module():
    assert {p.stem for p in MODULES} - {"__init__"} == set(ALGORITHMS)


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_an_algorithm_module_is_under_300_lines(module):
    assert len(module.read_text().splitlines()) < 300


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_an_algorithm_module_names_no_on_disk_tensor(module):
    # On-disk names live in the layout documents only; modules use roles such as w["fc"].
    strings = [node.value for node in ast.walk(ast.parse(module.read_text()))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    on_disk = [s for s in strings if re.search(r"\.(weight|bias)$|^(model|layers|mtp_layers|transformer)\.", s)]
    assert on_disk == []


def test_the_generate_loop_is_one_function_of_at_most_60_lines():
    tree = ast.parse((PACKAGE / "generate.py").read_text())
    generate = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "generate")
    assert generate.end_lineno - generate.lineno + 1 <= 60
