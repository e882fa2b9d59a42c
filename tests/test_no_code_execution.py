"""No code path runs code that a checkpoint carries (spec/index.md#GEN-5, README: "never unpickles, and ignores
auto_map"): an AST scan of the shipped and tooling code for pickle, torch.load without weights_only=True, the eval
and exec builtins, trust_remote_code, and dynamic imports that could load a checkpoint's Python files."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ["reference/specfmt", "conformance/specfmt_conformance", "conformance/adapters", "conformance/generators",
           "scripts", "benchmarks"]
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
RUNNING_BUILTINS = {"eval", "exec"}
FILE_IMPORTERS = {"import_module", "spec_from_file_location", "SourceFileLoader", "SourcelessFileLoader",
                  "load_source", "run_path", "run_module"}
ALLOWED = {
    # Writes the pickle-only checkpoint that the suite expects to be refused (weights.pickle) with pickle.dumps;
    # nothing there loads one. A bytes literal would remove the import (conformance/generators is the suite's).
    ("conformance/generators/ckpt_bytes.py", "imports pickle"),
}


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _calls(node: ast.Call, torch: set[str], pickles: set[str], bare: dict[str, str]) -> list[str]:
    """What one call does that the scan forbids."""
    func, found = node.func, []
    if isinstance(func, ast.Name):
        name = bare.get(func.id, func.id)
        if name in RUNNING_BUILTINS:
            found.append(f"calls {name}")
        elif name in FILE_IMPORTERS:
            found.append(f"calls {name}")
        elif name == "__import__" and not (node.args and isinstance(node.args[0], ast.Constant)):
            found.append("calls __import__ with a computed name")
        elif name == "torch.load" and not any(k.arg == "weights_only" and _is_true(k.value) for k in node.keywords):
            found.append("calls torch.load without weights_only=True")
    elif isinstance(func, ast.Attribute):
        base = func.value.id if isinstance(func.value, ast.Name) else None
        if base in torch and func.attr == "load" and not any(
                k.arg == "weights_only" and _is_true(k.value) for k in node.keywords):
            found.append("calls torch.load without weights_only=True")
        elif base in pickles and func.attr in ("load", "loads", "Unpickler"):
            found.append(f"calls {base}.{func.attr}")
        elif base in ("builtins", "__builtins__") and func.attr in RUNNING_BUILTINS | {"__import__"}:
            found.append(f"calls {base}.{func.attr}")
        elif func.attr in FILE_IMPORTERS:
            found.append(f"calls {func.attr}")
    for k in node.keywords:
        if k.arg == "trust_remote_code" and not (isinstance(k.value, ast.Constant) and k.value.value is False):
            found.append("passes trust_remote_code other than False")
    return found


def scan_file(path: Path, shown: str) -> list[str]:
    """Every forbidden construct in one Python file, as `shown:line: what`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    torch, pickles, bare = {"torch"}, set(), {}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):  # the names that imports bind, wherever they sit
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in PICKLE_MODULES:
                    pickles.add(alias.asname or top)
                    found.append((node.lineno, f"imports {alias.name}"))
                elif top == "runpy":
                    found.append((node.lineno, "imports runpy"))
                elif alias.name == "torch" and alias.asname:
                    torch.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in PICKLE_MODULES or top == "runpy":
                found.append((node.lineno, f"imports from {node.module}"))
            for alias in node.names:
                if node.module == "torch" and alias.name == "load":
                    bare[alias.asname or "load"] = "torch.load"
                elif top in ("importlib", "imp", "runpy", "builtins") or alias.name in RUNNING_BUILTINS:
                    bare[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += [(node.lineno, what) for what in _calls(node, torch, pickles, bare)]
    return [f"{shown}:{line}: {what}" for line, what in sorted(set(found))]


def scan(root: Path, folders: list[str]) -> list[str]:
    """Every forbidden construct in the .py files under `folders` of `root`, less the justified ALLOWED ones."""
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            shown = path.relative_to(root).as_posix()
            found += [v for v in scan_file(path, shown) if (shown, v.split(": ", 1)[1]) not in ALLOWED]
    return found


def test_no_code_path_unpickles_evals_or_imports_a_checkpoints_code():
    assert scan(ROOT, SCANNED) == []


def test_every_allowed_entry_still_matches_a_construct_in_its_file():
    # A stale entry would silently allow the construct if it came back.
    for shown, what in ALLOWED:
        assert any(v.endswith(f": {what}") for v in scan_file(ROOT / shown, shown)), (shown, what)


PLANTED = '''\
import pickle
import runpy
import torch as th
from importlib import import_module
from importlib.util import spec_from_file_location
from torch import load as tload

def read(path, x, name):
    state = th.load(path)
    same = tload(path, weights_only=False)
    fine = th.load(path, weights_only=True)
    obj = pickle.loads(b"")
    value = eval(x)
    exec(x)
    module = import_module(name)
    spec = spec_from_file_location("modeling", path)
    other = __import__(name)
    model = AutoModel.from_pretrained(path, trust_remote_code=True)
    model.eval()
'''


def test_the_scan_reports_each_call_planted_in_a_fixture(tmp_path):
    (tmp_path / "planted.py").write_text(PLANTED)
    assert scan(tmp_path, ["."]) == [
        "planted.py:1: imports pickle",
        "planted.py:2: imports runpy",
        "planted.py:9: calls torch.load without weights_only=True",
        "planted.py:10: calls torch.load without weights_only=True",
        "planted.py:12: calls pickle.loads",
        "planted.py:13: calls eval",
        "planted.py:14: calls exec",
        "planted.py:15: calls import_module",
        "planted.py:16: calls spec_from_file_location",
        "planted.py:17: calls __import__ with a computed name",
        "planted.py:18: passes trust_remote_code other than False",
    ]
