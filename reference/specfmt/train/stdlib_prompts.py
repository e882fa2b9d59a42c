"""The built-in prompt sets, made from the Python standard library of the interpreter that runs specfmt (read with
ast: nothing is imported), so every machine has training prompts offline: `python-docs` (pydoc topics and what
each module is for), `python-api` (its functions, classes and methods) and `python-code` ("complete this
function": the signature and docstring of each documented public function and method). The same Python version
gives the same prompts, in the same order.
"""

from __future__ import annotations

import ast
import copy
import functools
import sysconfig
from pathlib import Path

from specfmt.text import TextError

CODE_TEMPLATE = "Complete this Python function:\n```python\n{}\n```"  # the HumanEval evaluation set's wrapper
CODE_DOC_CHARS = (16, 1500)  # a docstring shorter says too little, a longer one is a manual page


def _modules(stdlib: Path, paths: list[Path]):
    """(module name, parsed tree) of each public module among `paths`, read with ast: nothing is imported; a file
    that does not parse is left out."""
    for path in paths:
        if path.stem.startswith("_") or path.stem in ("antigravity", "this"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        yield (path.stem if path.parent == stdlib else f"{path.parent.name}.{path.stem}"), tree


def _docstring_prompts(stdlib: Path) -> list[str]:
    """Questions about the public modules of the standard library: what each is for, and its functions and
    classes."""
    prompts = []
    for module, tree in _modules(stdlib, sorted(stdlib.glob("*.py"))):
        doc = (ast.get_docstring(tree) or "").strip().split("\n\n")[0]
        public = [n for n in tree.body if not getattr(n, "name", "_").startswith("_")]
        functions = [n.name for n in public if isinstance(n, ast.FunctionDef)]
        classes = [n.name for n in public if isinstance(n, ast.ClassDef)]
        prompts.append(f"What is the Python module `{module}` for? Answer in a short paragraph.")
        if doc:
            prompts.append(f"Explain this documentation of the Python module `{module}` in simple words:\n\n{doc}")
        prompts += [f"Write a short Python example that uses `{module}.{name}` and explain it." for name in
                    functions[:8]]
        prompts += [f"What is the class `{module}.{name}` used for? Give an example." for name in classes[:4]]
    return prompts


SKIPPED_PACKAGES = ("test", "idlelib", "lib2to3", "ensurepip", "turtledemo", "pydoc_data", "site-packages",
                    "__pycache__", "config-3")


def _package_paths(stdlib: Path) -> list[Path]:
    """The standard library's modules, then the modules of its packages (one level down), the test and tool
    packages left out."""
    return sorted(stdlib.glob("*.py")) + sorted(p for p in stdlib.glob("*/*.py")
                                                if not p.parent.name.startswith(SKIPPED_PACKAGES))


def _api_prompts(stdlib: Path) -> list[str]:
    """Questions about every public function, class and method of the standard library's modules and packages:
    the templates differ from python-docs', so the two sets never share a prompt."""
    prompts = []
    for module, tree in _modules(stdlib, _package_paths(stdlib)):
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                prompts.append(f"How do I use `{module}.{node.name}` in Python? Show a short example.")
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                prompts.append(f"Explain the Python class `{module}.{node.name}` and show how to use it.")
                prompts += [f"What does the method `{module}.{node.name}.{m.name}` do? Give an example."
                            for m in node.body if isinstance(m, ast.FunctionDef) and not m.name.startswith("_")][:3]
    return prompts


def _docs_prompts(stdlib: Path) -> list[str]:
    from pydoc_data.topics import topics

    prompts = [template.format(topic) for topic in sorted(topics) for template in (
        "Explain the Python topic '{}' with a short example.", "What are common mistakes with '{}' in Python?")]
    return prompts + _docstring_prompts(stdlib)


def _documented(tree: ast.Module):
    """The public functions of a module, then the public methods of its public classes, that have a docstring
    of CODE_DOC_CHARS characters."""
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")):
        nodes += [n for n in cls.body if isinstance(n, ast.FunctionDef)]
    for node in nodes:
        doc = ast.get_docstring(node, clean=False) or ""
        if not node.name.startswith("_") and CODE_DOC_CHARS[0] <= len(doc.strip()) <= CODE_DOC_CHARS[1]:
            yield node


def _indented(doc: str) -> str:
    """A cleaned docstring as a function body writes it: lines after the first indented by 4, closing quotes on
    their own line when it has several."""
    lines = doc.splitlines()
    return lines[0] + "".join(f"\n    {line}" if line else "\n" for line in lines[1:]) + "\n    " * (len(lines) > 1)


def _code_prompts(stdlib: Path) -> list[str]:
    """A completion prompt per documented public function and method: its signature and docstring, undecorated
    and without its body, in the wrapper of the HumanEval evaluation set."""
    prompts = []
    for _, tree in _modules(stdlib, _package_paths(stdlib)):
        for node in _documented(tree):
            stub = copy.copy(node)  # the same node undecorated, its body only the docstring, indented as PEP 257
            stub.decorator_list, stub.body = [], [ast.Expr(ast.Constant(_indented(ast.get_docstring(node))))]
            prompts.append(CODE_TEMPLATE.format(ast.unparse(stub)))
    return prompts


BUILTIN = {"python-docs": _docs_prompts, "python-api": _api_prompts, "python-code": _code_prompts}


def builtin_prompts(name: str) -> list[str]:
    """The named built-in prompt set (BUILTIN), made from the Python installed on this machine."""
    if name not in BUILTIN:
        raise TextError(f"unknown built-in prompt set {name!r}; known: {', '.join(BUILTIN)}")
    return list(_built(name, sysconfig.get_paths()["stdlib"]))


@functools.cache
def _built(name: str, stdlib: str) -> tuple[str, ...]:
    """A set made once per process (parsing the standard library takes seconds)."""
    return tuple(BUILTIN[name](Path(stdlib)))
