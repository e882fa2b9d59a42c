"""Size and binding rules of the runtime and the trainer (CONTRIBUTING.md section 2; issues 21 item 6 and
before): each algorithm module and each trainer module is under 300 lines and names no on-disk tensor (weights
by role); the generate loop and every trainer function are at most 60 lines; a recipe is its own module and one
line of the registry, the only place in the trainer that spells an algorithm's name."""

import ast
import re
from pathlib import Path

import pytest

from specfmt.algorithms import ALGORITHMS
from specfmt.train.recipes import RECIPES

PACKAGE = Path(__file__).resolve().parent.parent / "reference" / "specfmt"
MODULES = sorted((PACKAGE / "algorithms").glob("*.py"))
TRAINER = sorted((PACKAGE / "train").rglob("*.py"))
RECIPE_MODULES = sorted((PACKAGE / "train" / "recipes").glob("*.py"))
ON_DISK = re.compile(r"\.(weight|bias)$|^(model|layers|mtp_layers|transformer)\.")


def strings_of(module: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def trainer_id(path: Path) -> str:
    return path.relative_to(PACKAGE / "train").as_posix()


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


@pytest.mark.parametrize("module", TRAINER, ids=trainer_id)
def test_a_trainer_module_is_under_300_lines(module):
    assert len(module.read_text().splitlines()) < 300


@pytest.mark.parametrize("module", TRAINER, ids=trainer_id)
def test_a_trainer_module_names_no_on_disk_tensor(module):
    # The recipes ask the layout for roles (roles.name("lm_head")); file names such as model.safetensors are not
    # tensors.
    on_disk = [s for s in strings_of(module) if ON_DISK.search(s) and not s.endswith((".safetensors", ".json"))]
    assert on_disk == []


@pytest.mark.parametrize("module", TRAINER, ids=trainer_id)
def test_a_trainer_function_is_at_most_60_lines(module):
    functions = [n for n in ast.walk(ast.parse(module.read_text())) if isinstance(n, ast.FunctionDef)]
    assert [f.name for f in functions if f.end_lineno - f.lineno + 1 > 60] == []


def test_every_recipe_is_its_own_module_and_one_registry_line():
    assert {p.stem for p in RECIPE_MODULES} - {"__init__", "common"} == set(RECIPES)
    for algorithm, recipe in RECIPES.items():
        assert recipe.make.__module__ == f"specfmt.train.recipes.{algorithm}"


def test_only_the_registry_and_its_own_module_spell_an_algorithm_name_in_the_trainer():
    # TRAINABLE tuples, `algorithm == "eagle3"` tests and argparse choices derive from RECIPES; a new recipe
    # touches its module and the registry only.
    spelled = [(trainer_id(path), s) for path in TRAINER for s in strings_of(path) if s in ALGORITHMS
               and trainer_id(path) not in ("recipes/__init__.py", f"recipes/{s}.py")]
    assert spelled == []
