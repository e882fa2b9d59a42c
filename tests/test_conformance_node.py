"""The Node adapter (conformance/adapters/node), written from the spec and the schemas alone, passes
every case of the schema and checkpoint levels: the standard can be implemented from its documents."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = ROOT / "conformance" / "adapters" / "node" / "adapter.cjs"
NODE = shutil.which("node")
HAVE_AJV = (ROOT / "node_modules" / "ajv" / "package.json").is_file()

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(
        NODE is None or not HAVE_AJV,
        reason="node is not on PATH" if NODE is None else "node_modules/ajv is absent (run `npm ci` or `make test`)",
    ),
]


def test_the_node_adapter_passes_every_schema_and_checkpoint_case(tmp_path):
    cmd = [sys.executable, "-m", "specfmt_conformance.cli", "run",
           "--adapter", f"{shlex.quote(NODE)} {shlex.quote(str(ADAPTER))}",
           "--level", "schema", "--level", "checkpoint", "--report", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    report = json.loads((tmp_path / "report.json").read_text())
    results = report["results"]
    failing = [(r["id"], r["status"], r["detail"]) for r in results if r["status"] != "pass"]
    assert failing == [], failing[:3]
    assert {r["level"] for r in results} == {"schema", "checkpoint"}
    assert run.returncode == 0, run.stderr[-2000:]
