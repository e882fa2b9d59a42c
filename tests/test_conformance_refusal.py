"""Refusal cases (conformance/PROTOCOL.md 3.4): a request the spec requires refused passes only when the adapter's
load or run answers an error carrying the case's code; an answer with outputs, or another code, fails."""

import hashlib
import json
import shlex
import struct
import sys
from pathlib import Path

import pytest

from specfmt_conformance.cli import main

CODE = "refused.k_above_limit"
# What the adapter answers to the command it is told to refuse at: an error with this code (None: no code), or ok.
ADAPTER = """
import json, sys
when, code = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    m = json.loads(line)
    if m["cmd"] == "stop":
        break
    if m["cmd"] == "hello":
        out = {"protocol": 1, "implementation": {"name": "refuser", "version": "0.1.0", "language": "python"},
               "supports": {"levels": ["numerics"], "profiles": [], "operations": ["propose"]}}
    elif m["cmd"] == when and code != "answer":
        error = {"message": "K 4 above the 3 heads", **({"code": code} if code != "none" else {})}
        out = {"seq": m["seq"], "error": error}
    elif m["cmd"] == "load":
        out = {"seq": m["seq"], "handle": "h1"}
    else:
        if m["cmd"] == "run":
            open(m["outputs"], "wb").write(b"")
        out = {"seq": m["seq"], "ok": True}
    print(json.dumps(out), flush=True)
"""


def build_suite(root: Path) -> Path:
    """One refusal case: propose with k 4 on a draft, no expected outputs."""
    case = root / "cases/numerics/1.0/num.refuse.k4"
    case.mkdir(parents=True)
    (case / "case.json").write_text(json.dumps({
        "id": "num.refuse.k4", "description": "d", "since": "1.0", "spec": ["spec/algorithms/medusa.md#ALG-MEDUSA-2"],
        "operation": "propose", "checkpoint": "draft", "verifier": "verifier", "params": {"k": 4},
        "inputs": "inputs.safetensors", "expected": None, "outputs": {}, "refusal": CODE}))
    for model in ("draft", "verifier"):
        (case / model).mkdir()
        (case / model / "config.json").write_text("{}")
    header = json.dumps({"token_ids": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}).encode()
    (case / "inputs.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<q", 1))
    files = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file()}
    (root / "manifest.json").write_text(json.dumps({
        "suite_version": "1.0.0", "format_version": "1.0", "files": files,
        "cases": [{"id": "num.refuse.k4", "level": "numerics", "path": "cases/numerics/1.0/num.refuse.k4",
                   "since": "1.0"}]}))
    return root


@pytest.mark.parametrize(("when", "code", "status"), [
    ("run", CODE, "pass"), ("load", CODE, "pass"), ("run", "refused.draft", "fail"), ("run", "none", "fail"),
    ("run", "answer", "fail")])
def test_a_refusal_case_passes_only_on_an_error_with_its_code(tmp_path, when, code, status):
    suite = build_suite(tmp_path / "suite")
    (tmp_path / "refuser.py").write_text(ADAPTER)
    cmd = shlex.join([sys.executable, str(tmp_path / "refuser.py"), when, code])
    exit_code = main(["run", "--suite", str(suite), "--adapter", cmd, "--report", str(tmp_path / "r"),
                      "--validate-protocol"])
    result = json.loads((tmp_path / "r" / "report.json").read_text())["results"][0]
    assert (result["status"], exit_code) == (status, 0 if status == "pass" else 1)
    if status == "fail":
        assert result["detail"]["refusal"] == CODE
