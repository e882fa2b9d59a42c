"""The install facts that the README and the site show, generated rather than typed: the extras table (from
specfmt.extras, the declaration the CLI's missing-package message uses too), the conformance run's console block
(from the committed report of the reference implementation) and the README's generated blocks.

A README block is delimited as gen_spec's are: `<!-- BEGIN GENERATED: <kind> <arg> -->` ... `END GENERATED`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from specfmt.extras import NEEDS, install_line
from specfmt.schemas import VERSION

REPORT = "conformance/results/specfmt-reference/report.json"
BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<kind>[a-z-]+) (?P<arg>[a-z0-9_-]+) -->\n)(?P<body>.*?)"
                   r"(<!-- END GENERATED: (?P=kind) (?P=arg) -->)", re.S)
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def extras_table(root: Path) -> str:
    """One row per command or option: the extra it needs and the pip line that brings it (four columns, so that
    on a phone the rows stack with each value labelled)."""
    rows = ["| Command | Option | Needs | Install |", "|---|---|---|---|"]
    for command, option, extra, why in NEEDS:
        flag, _, rest = option.partition(" ")
        shown = f"`{flag}`" + (f" {rest}" if rest else "") if option else ""
        rows.append(f"| `specfmt {command}` | {shown} | {why} | `{install_line(extra)}` |")
    return "\n".join(rows) + "\n"


def cpu_torch(root: Path) -> str:
    """How to install the CPU build of torch before an extra that needs torch."""
    return ("`specfmt[runtime]` and `specfmt[train]` need torch, and a plain `pip install` of torch on Linux brings "
            "its CUDA build (several GB of NVIDIA libraries). On a machine without a GPU, install the CPU build "
            "first, then the extra:\n\n"
            f"```sh\n{CPU_TORCH}\npip install 'specfmt[runtime]'\n```\n\n"
            "pip keeps the torch that is installed when it satisfies the extra. In a repository checkout, "
            "`constraints.txt` pins the CPU build for `make`.\n")


def reference_report(root: Path) -> dict:
    return json.loads((root / REPORT).read_text(encoding="utf-8"))


def conformance_run(root: Path, command: str = "make conformance") -> str:
    """The console block of a run of the whole suite against the reference adapter, as the committed report of
    that run prints it (tests/docs/test_generated_counts.py checks that the report is of the current suite)."""
    sys.path.insert(0, str(root / "conformance"))
    from specfmt_conformance.report import console_lines

    return "```console\n$ " + command + "\n" + "\n".join(console_lines(reference_report(root))) + "\n```\n"


def reference_run_snippet(root: Path) -> str:
    return conformance_run(root, 'specfmt-conformance run --adapter "specfmt conformance-adapter"')


README_BLOCKS = {("extras", "table"): extras_table, ("extras", "cpu-torch"): cpu_torch}


def readme(root: Path) -> dict[Path, str]:
    """README.md with its generated blocks filled; nothing in a partial tree without one (as gen_docs without the
    site)."""
    path = root / "README.md"
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")

    def fill(m: re.Match) -> str:
        body = README_BLOCKS[(m["kind"], m["arg"])](root)
        return m.group(1) + body + m.group(5)

    return {path: BLOCK.sub(fill, text)}


ADAPTERS_PAGE = "docs/conformance/adapters.md"


def run_page_adapter(root: Path, name: str, adapter_args: list[str], runner_args: list[str]) -> list[str]:
    """The runner's stdout lines for the adapter that the adapters page shows in its `name` block, run against the
    suite this checkout holds."""
    import shlex
    import subprocess
    import tempfile

    page = (root / ADAPTERS_PAGE).read_text(encoding="utf-8")
    code = re.search(rf'```python title="{re.escape(name)}"\n(.*?)```', page, re.S)[1]
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / name
        adapter.write_text(code, encoding="utf-8")
        command = shlex.join([sys.executable, str(adapter), *adapter_args])
        done = subprocess.run([sys.executable, "-m", "specfmt_conformance", "run", *runner_args, "--adapter", command],
                              cwd=root, capture_output=True, text=True, timeout=300)
    return done.stdout.splitlines()


def not_applicable_run(root: Path) -> str:
    """The smallest adapter of the adapters page, which declares nothing: every case is not-applicable."""
    lines = run_page_adapter(root, "hello_adapter.py", [], [])
    return '```console\n$ specfmt-conformance run --adapter "python3 hello_adapter.py"\n' + "\n".join(lines) + "\n```\n"


def schema_adapter_run(root: Path) -> str:
    """The schema-only adapter of the adapters page run against the suite's schema level: the console block and the
    sentence that counts what the schemas alone pass."""
    schemas = f"schemas/v{VERSION}"
    lines = run_page_adapter(root, "schema_adapter.py", [str(root / schemas)], ["--level", "schema"])
    failing = [line for line in lines if line.startswith("FAIL")]
    summary = next(line for line in lines if line.startswith("schema: "))
    passed, total = re.search(r"(\d+) pass", summary)[1], re.search(r"schema: (\d+) case", summary)[1]
    shown = failing[:1] + (["..."] if len(failing) > 1 else [])
    command = f'$ specfmt-conformance run --adapter "python3 schema_adapter.py {schemas}" --level schema --report out'
    return ("```console\n" + "\n".join([command, *shown, summary, "certifying: no"]) + "\n```\n\n"
            f"The schemas alone pass {passed} of the {total} cases.")
