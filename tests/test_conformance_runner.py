"""The conformance runner on a miniature suite of its own: the misbehaving adapters are recorded as
crash, error (timeout) and fail, expectations behave strictly, the manifest guards the data, and
the reports validate. The runner never imports specfmt."""

import ast
import hashlib
import json
import math
import os
import shlex
import struct
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from specfmt_conformance.cli import main
from specfmt_conformance.compare import compare_tensor
from specfmt_conformance.tensors import Tensor, read_tensors

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "conformance"
MISBEHAVING = CONFORMANCE / "adapters" / "misbehaving"
PACKAGE = CONFORMANCE / "specfmt_conformance"
FORMATS = {"F32": "f", "F64": "d", "F16": "e", "I64": "q", "I32": "i", "BOOL": "?"}

REQUIRED = {"code": "config.required", "pointer": "/verifier", "severity": "error"}
SCHEMA_TESTS = [  # (id, document, valid, findings); the misbehaving adapters report no findings
    ("ok", {"a": 1}, True, []),
    ("needs-finding", {"b": 1}, False, [REQUIRED]),
    ("trigger", {"x-misbehave": True}, True, []),
    ("ok-after", {"c": 1}, True, []),
]


def write_safetensors(path: Path, tensors: dict) -> None:
    """tensors: name -> (dtype, shape, flat values); BF16 is not needed here."""
    header, data = {}, b""
    for name, (dtype, shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}{FORMATS[dtype]}", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


def write_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def build_suite(root: Path) -> Path:
    """Four schema cases, one checkpoint case and one numerics case, with their manifest."""
    group = {"id": "mini", "description": "miniature group", "since": "1.0", "spec": ["spec/config.md#CFG-2"],
             "profile": "compat", "tests": [{"id": i, "description": i, "data": doc, "valid": valid,
                                             "findings": findings} for i, doc, valid, findings in SCHEMA_TESTS]}
    write_json(root / "cases/schema/1.0/mini.json", [group])
    cases = [{"id": f"mini/{t[0]}", "level": "schema", "path": "cases/schema/1.0/mini.json", "since": "1.0"}
             for t in SCHEMA_TESTS]
    ckpt = root / "cases/checkpoint/1.0/ckpt-ok"
    write_json(ckpt / "case.json", {"id": "ckpt-ok", "description": "d", "since": "1.0", "spec": [],
                                    "profile": "strict", "checkpoint": "checkpoint", "valid": True, "findings": []})
    write_json(ckpt / "checkpoint/config.json", {"speculators_model_type": "eagle3"})
    num = root / "cases/numerics/1.0/num-forward"
    write_json(num / "case.json", {
        "id": "num-forward", "description": "d", "since": "1.0", "spec": [], "operation": "forward",
        "checkpoint": "draft", "verifier": "verifier", "params": {}, "inputs": "inputs.safetensors",
        "expected": "expected.safetensors", "golden": {"generator": "test"},
        "outputs": {"tokens": {"compare": "exact"}, "logits": {"compare": "allclose", "rtol": 1e-4, "atol": 1e-4}}})
    write_json(num / "draft/config.json", {})
    write_json(num / "verifier/config.json", {})
    write_safetensors(num / "inputs.safetensors", {"input_ids": ("I64", [3], [1, 2, 3])})
    write_safetensors(num / "expected.safetensors", {"tokens": ("I64", [3], [4, 5, 6]),
                                                     "logits": ("F32", [2, 2], [0.5, -1.0, 2.0, 0.0])})
    cases += [{"id": "ckpt-ok", "level": "checkpoint", "path": "cases/checkpoint/1.0/ckpt-ok", "since": "1.0"},
              {"id": "num-forward", "level": "numerics", "path": "cases/numerics/1.0/num-forward", "since": "1.0"}]
    files = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file()}
    write_json(root / "manifest.json", {"suite_version": "1.0.0", "format_version": "1.0",
                                        "cases": cases, "files": files})
    return root


@pytest.fixture
def suite(tmp_path):
    return build_suite(tmp_path / "suite")


def adapter(name: str, *args: str) -> str:
    return shlex.join([sys.executable, str(MISBEHAVING / f"{name}.py"), *args])


def run(suite: Path, report: Path, adapter_cmd: str, *extra: str) -> tuple[int, dict]:
    code = main(["run", "--suite", str(suite), "--adapter", adapter_cmd, "--report", str(report), *extra])
    return code, json.loads((report / "report.json").read_text())


def statuses(report: dict) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["results"]}


def result(report: dict, case_id: str) -> dict:
    return next(r for r in report["results"] if r["id"] == case_id)


def test_an_adapter_that_exits_mid_case_is_a_crash_and_is_restarted_for_the_next_case(suite, tmp_path):
    code, report = run(suite, tmp_path / "r", adapter("crash"))
    assert statuses(report) == {"mini/ok": "pass", "mini/needs-finding": "fail", "mini/trigger": "crash",
                                "mini/ok-after": "pass", "ckpt-ok": "not-applicable",
                                "num-forward": "not-applicable"}
    assert "exiting on purpose" in result(report, "mini/trigger")["stderr"]
    assert report["header"]["restarts"] == 1
    assert code == 1


def test_an_adapter_that_hangs_is_killed_at_the_timeout_and_recorded_as_error(suite, tmp_path):
    code, report = run(suite, tmp_path / "r", adapter("hang"), "--timeout", "2", "--level", "schema")
    hung = result(report, "mini/trigger")
    assert (hung["status"], hung["detail"]["reason"]) == ("error", "timeout")
    assert 1.5 < hung["duration_s"] < 10
    assert "hanging on purpose" in hung["stderr"]
    assert result(report, "mini/ok-after")["status"] == "pass"
    assert code == 1


def test_an_adapter_that_prints_garbage_is_a_crash(suite, tmp_path):
    code, report = run(suite, tmp_path / "r", adapter("garbage"), "--level", "schema")
    garbled = result(report, "mini/trigger")
    assert garbled["status"] == "crash"
    assert "not a JSON object" in garbled["detail"]["summary"]
    assert result(report, "mini/ok-after")["status"] == "pass"


def test_a_wrong_shaped_output_fails_its_numerics_case_with_both_shapes_in_the_metrics(suite, tmp_path):
    code, report = run(suite, tmp_path / "r", adapter("wrong_shape", "forward"))
    num = result(report, "num-forward")
    assert num["status"] == "fail"
    assert (num["metrics"]["logits"]["shape"], num["metrics"]["logits"]["found_shape"]) == ([2, 2], [3, 2])
    assert num["metrics"]["tokens"]["token_divergence"] == 0
    assert {r["status"] for r in report["results"] if r["level"] != "numerics"} == {"not-applicable"}
    assert code == 1


# A correct numerics adapter: copies the golden to the outputs and logs every command it receives.
ECHO_ADAPTER = """
import json, shutil, sys
from pathlib import Path
log = open(sys.argv[1], "a")
for line in sys.stdin:
    m = json.loads(line)
    log.write(m["cmd"] + "\\n")
    log.flush()
    if m["cmd"] == "stop":
        break
    if m["cmd"] == "hello":
        out = {"protocol": 1, "implementation": {"name": "echo", "version": "0.1.0", "language": "python"},
               "supports": {"levels": ["numerics"], "profiles": [], "operations": ["forward"],
                            **({"algorithms": sys.argv[2].split(",")} if len(sys.argv) > 2 else {})}}
    elif m["cmd"] == "load":
        out = {"seq": m["seq"], "handle": "h1"}
    else:
        if m["cmd"] == "run":
            shutil.copy(Path(m["inputs"]).parent / "expected.safetensors", m["outputs"])
        out = {"seq": m["seq"], "ok": True}
    print(json.dumps(out), flush=True)
"""


def test_a_correct_numerics_adapter_passes_and_undeclared_levels_are_never_sent(suite, tmp_path):
    (tmp_path / "echo.py").write_text(ECHO_ADAPTER)
    log = tmp_path / "commands.log"
    cmd = shlex.join([sys.executable, str(tmp_path / "echo.py"), str(log)])
    code, report = run(suite, tmp_path / "r", cmd, "--validate-protocol")
    num = result(report, "num-forward")
    assert num["status"] == "pass"
    assert (num["metrics"]["logits"]["max_abs"], num["metrics"]["tokens"]["token_divergence"]) == (0.0, None)
    assert log.read_text().split() == ["hello", "load", "run", "unload", "stop"]
    assert (code, report["header"]["certifying"]) == (0, True)


@pytest.mark.parametrize(("declared", "status"), [("eagle3", "pass"), ("medusa,mlp_speculator", "not-applicable")])
def test_a_case_of_an_undeclared_algorithm_is_not_applicable_and_never_sent(suite, tmp_path, declared, status):
    manifest = json.loads((suite / "manifest.json").read_text())
    next(c for c in manifest["cases"] if c["id"] == "num-forward")["algorithm"] = "eagle3"
    (suite / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "echo.py").write_text(ECHO_ADAPTER)
    log = tmp_path / "commands.log"
    cmd = shlex.join([sys.executable, str(tmp_path / "echo.py"), str(log), declared])
    code, report = run(suite, tmp_path / "r", cmd, "--validate-protocol")
    assert result(report, "num-forward")["status"] == status
    assert ("run" in log.read_text().split()) == (status == "pass")
    assert report["header"]["supports"]["algorithms"] == declared.split(",")
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert f"algorithms {declared.replace(',', ', ')}" in markdown
    if status == "not-applicable":
        assert "eagle3 algorithm" in result(report, "num-forward")["detail"]["summary"]


def test_an_undeclared_operation_is_not_applicable_and_never_sent(suite, tmp_path):
    code, report = run(suite, tmp_path / "r", adapter("wrong_shape", "propose"))
    assert result(report, "num-forward")["status"] == "not-applicable"
    assert "forward" in result(report, "num-forward")["detail"]["summary"]
    assert code == 0
    assert report["header"]["certifying"] is False  # nothing applied, nothing certified


def test_xfail_absorbs_a_failure_and_a_passing_xfail_is_an_xpass_that_fails_the_run(suite, tmp_path):
    entries = [{"id": "mini/needs-*", "status": "xfail", "reason": "known bug"},
               {"id": "mini/ok", "status": "xfail", "reason": "thought to be broken"}]
    write_json(tmp_path / "exp.json", {"entries": entries})
    code, report = run(suite, tmp_path / "r", adapter("crash", "never"), "--case", "mini/ok",
                       "--case", "mini/needs-finding", "--expectations", str(tmp_path / "exp.json"))
    assert statuses(report) == {"mini/ok": "xpass", "mini/needs-finding": "xfail"}
    assert result(report, "mini/needs-finding")["detail"]["actual"] == "fail"
    assert code == 1
    assert report["header"]["certifying"] is False


def test_an_expectations_skip_is_never_sent_and_makes_the_run_non_certifying(suite, tmp_path):
    entries = [{"id": "mini/trigger", "status": "skip", "reason": "would crash"},
               {"id": "mini/needs-finding", "status": "xfail", "reason": "known bug"}]
    write_json(tmp_path / "exp.json", {"entries": entries})
    code, report = run(suite, tmp_path / "r", adapter("crash"), "--expectations", str(tmp_path / "exp.json"))
    skipped = result(report, "mini/trigger")
    assert (skipped["status"], skipped["detail"]["reason"]) == ("skip", "would crash")
    assert report["header"]["restarts"] == 0
    assert code == 0
    assert report["header"]["certifying"] is False


def test_an_expectation_that_matches_no_case_is_a_usage_error(suite, tmp_path, capsys):
    write_json(tmp_path / "exp.json", {"entries": [{"id": "mini/typo", "status": "skip", "reason": "r"}]})
    code = main(["run", "--suite", str(suite), "--adapter", adapter("crash"),
                 "--expectations", str(tmp_path / "exp.json")])
    assert code == 2
    assert "mini/typo" in capsys.readouterr().err


def test_a_case_filtered_run_passing_every_case_is_not_certifying_and_says_so(suite, tmp_path, capsys):
    code, report = run(suite, tmp_path / "r", adapter("crash", "never"), "--case", "mini/ok*")
    assert set(statuses(report).values()) == {"pass"}
    assert (code, report["header"]["certifying"]) == (0, False)
    assert report["header"]["selection"] | {"levels": None} == {"levels": None, "cases": ["mini/ok*"], "selected": 2,
                                                                "suite_cases": 6}
    assert capsys.readouterr().out.splitlines()[-1] == "certifying: no (filtered run: 2 of 6 cases)"
    assert "**Certifying: no** (filtered run: 2 of 6 cases)" in (tmp_path / "r" / "report.md").read_text()


def test_a_level_filtered_run_is_not_certifying_and_one_naming_every_level_is(suite, tmp_path, capsys):
    (tmp_path / "echo.py").write_text(ECHO_ADAPTER)
    cmd = shlex.join([sys.executable, str(tmp_path / "echo.py"), str(tmp_path / "log")])
    _, report = run(suite, tmp_path / "r", cmd, "--level", "numerics")
    assert report["header"]["certifying"] is False
    assert capsys.readouterr().out.splitlines()[-1] == "certifying: no (filtered run: 1 of 6 cases)"
    _, report = run(suite, tmp_path / "r", cmd, "--level", "schema", "--level", "checkpoint", "--level", "numerics")
    assert report["header"]["certifying"] is True
    assert capsys.readouterr().out.splitlines()[-1] == "certifying: yes"


# An adapter that dies before it answers hello, as one whose imports fail does: 30 lines on stderr, then exit 1.
DYING_ADAPTER = "import sys\nfor i in range(30):\n    print(f'log line {i}', file=sys.stderr)\nsys.exit(1)\n"


def test_a_failed_handshake_prints_the_last_lines_of_the_adapters_stderr(suite, tmp_path, capsys):
    (tmp_path / "dying.py").write_text(DYING_ADAPTER)
    code = main(["run", "--suite", str(suite), "--adapter", shlex.join([sys.executable, str(tmp_path / "dying.py")])])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0] == "specfmt-conformance: the adapter failed the handshake: adapter exited (exit code 1)"
    assert err[1] == "the adapter's stderr (last 20 lines):"
    assert err[2:] == [f"  log line {i}" for i in range(10, 30)]


def test_version_prints_the_package_suite_runner_and_protocol_versions(capsys):
    from importlib import metadata

    from specfmt_conformance import PROTOCOL_VERSION, RUNNER_VERSION
    from specfmt_conformance.suite import Suite

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    suite = Suite()
    assert exit_.value.code == 0
    assert capsys.readouterr().out == (f"specfmt-conformance {metadata.version('specfmt-conformance')}: suite "
                                       f"{suite.suite_version} (format {suite.format_version}), runner "
                                       f"{RUNNER_VERSION}, protocol {PROTOCOL_VERSION}\n")


@pytest.mark.parametrize("tamper", ["edit", "add"])
def test_a_tampered_or_unlisted_file_fails_the_manifest_check(suite, tmp_path, capsys, tamper):
    if tamper == "edit":
        (suite / "cases/numerics/1.0/num-forward/expected.safetensors").write_bytes(b"\0" * 16)
    else:
        (suite / "cases/checkpoint/1.0/ckpt-ok/checkpoint/extra.safetensors").write_bytes(b"")
    code = main(["run", "--suite", str(suite), "--adapter", adapter("crash"), "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert ("expected.safetensors: sha256 mismatch" if tamper == "edit" else "extra.safetensors: not listed") in err
    assert not (tmp_path / "r").exists()


def test_the_three_reports_are_written_and_report_json_validates_against_its_schema(suite, tmp_path):
    _, report = run(suite, tmp_path / "r", adapter("crash"), "--validate-protocol")
    schema = json.loads((CONFORMANCE / "meta/report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)
    assert report["summary"]["schema"] == {**dict.fromkeys(report["summary"]["schema"], 0), "total": 4,
                                           "pass": 2, "fail": 1, "crash": 1}
    markdown = (tmp_path / "r/report.md").read_text()
    assert "`mini/needs-finding`" in markdown and "missing: `config.required` at `/verifier`" in markdown
    junit = ET.parse(tmp_path / "r/junit.xml").getroot()
    suites = {s.get("name"): s for s in junit.iter("testsuite")}
    assert set(suites) == {"schema", "checkpoint", "numerics"}
    assert (suites["schema"].get("failures"), suites["schema"].get("errors")) == ("1", "1")
    props = {p.get("name"): p.get("value") for p in suites["schema"].iter("property")}
    assert props["manifest_sha256"] == hashlib.sha256((suite / "manifest.json").read_bytes()).hexdigest()
    crashed = next(c for c in suites["schema"].iter("testcase") if c.get("name") == "mini/trigger")
    assert "exiting on purpose" in crashed.find("system-err").text


def test_list_and_show_print_the_cases_and_their_files(suite, capsys):
    assert main(["list", "--suite", str(suite), "--level", "numerics"]) == 0
    assert capsys.readouterr().out.split("\t")[0] == "num-forward"
    assert main(["show", "--suite", str(suite), "mini/needs-finding"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["case"]["test"]["findings"] == [REQUIRED]
    assert list(shown["files"]) == ["cases/schema/1.0/mini.json"]


def test_allclose_reports_the_first_mismatch_max_errors_and_token_divergence():
    expected, actual = Tensor("F32", (4,), [1.0, 2.0, 3.0, 4.0]), Tensor("F32", (4,), [1.0, 2.5, 3.0, 3.0])
    metrics, problem = compare_tensor("x", {"compare": "allclose", "rtol": 0.0, "atol": 0.1}, expected, actual)
    assert (metrics["first_mismatch"], metrics["mismatch_count"], metrics["max_abs"]) == (1, 2, 1.0)
    assert metrics["max_rel"] == 0.25 and "first at flat index 1" in problem
    assert compare_tensor("x", {"compare": "allclose", "rtol": 0.0, "atol": 1.0}, expected, actual)[1] is None
    tokens = compare_tensor("t", {"compare": "exact"}, Tensor("I64", (4,), [7, 8, 9, 10]),
                            Tensor("I64", (3,), [7, 8, 1]))[0]
    assert tokens["token_divergence"] == 2


def test_the_reader_widens_bf16_and_f16_exactly_and_nan_matches_nan(tmp_path):
    bf16 = struct.pack("<3H", 0x3F80, 0xC040, 0x7FC0)  # 1.0, -3.0, NaN
    header = json.dumps({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                         "h": {"dtype": "F16", "shape": [1], "data_offsets": [6, 8]}}).encode()
    (tmp_path / "t.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bf16 + struct.pack("<e", 0.5))
    tensors = read_tensors(tmp_path / "t.safetensors")
    assert tensors["b"].values[:2] == [1.0, -3.0] and math.isnan(tensors["b"].values[2])
    assert tensors["h"].values == [0.5]
    assert compare_tensor("b", {"compare": "exact"}, tensors["b"], tensors["b"])[1] is None


def test_the_runner_never_imports_specfmt():
    for module in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "specfmt" or n.startswith("specfmt.") for n in names), module.name


def _walk_properties(schema, where=""):
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            yield f"{where}/{name}", sub
        for key, sub in schema.items():
            yield from _walk_properties(sub, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from _walk_properties(sub, f"{where}/{i}")


def _patterns(schema):
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for sub in schema.values():
            yield from _patterns(sub)
    elif isinstance(schema, list):
        for sub in schema:
            yield from _patterns(sub)


RUNNER_SCHEMAS = sorted((CONFORMANCE / "meta/protocol").glob("*.schema.json")) + [
    CONFORMANCE / "meta/report.schema.json", CONFORMANCE / "meta/expectations.schema.json"]


@pytest.mark.parametrize("path", RUNNER_SCHEMAS, ids=lambda p: p.name)
def test_a_meta_schema_is_valid_describes_every_property_and_anchors_every_pattern(path):
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert [where for where, sub in _walk_properties(schema) if "description" not in sub] == []
    assert [p for p in _patterns(schema) if not (p.startswith("^") and p.endswith("$"))] == []


def test_a_report_path_that_is_a_file_is_a_usage_error_before_the_run(suite, tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    code = main(["run", "--suite", str(suite), "--adapter", adapter("crash"), "--report", str(tmp_path / "taken")])
    assert code == 2
    assert capsys.readouterr().err == (f"specfmt-conformance: --report {tmp_path / 'taken'}: not a directory; the "
                                       "reports are written into one\n")


# An adapter that answers hello, then marks a file and hangs on its first case.
MARKING_ADAPTER = """
import json, sys, time
from pathlib import Path
for line in sys.stdin:
    m = json.loads(line)
    if m["cmd"] == "hello":
        print(json.dumps({"protocol": 1, "implementation": {"name": "marking", "version": "0.1.0", "language": "py"},
                          "supports": {"levels": ["schema"], "profiles": ["compat"], "operations": []}}), flush=True)
        continue
    Path(sys.argv[1]).write_text("busy")
    time.sleep(3600)
"""


def test_ctrl_c_kills_the_adapter_and_ends_the_run_in_one_line_with_status_130(suite, tmp_path):
    import signal
    import subprocess

    (tmp_path / "marking.py").write_text(MARKING_ADAPTER)
    marker = tmp_path / "busy"
    argv = [sys.executable, "-m", "specfmt_conformance", "run", "--suite", str(suite), "--adapter",
            shlex.join([sys.executable, str(tmp_path / "marking.py"), str(marker)]), "--timeout", "300"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(CONFORMANCE)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even under nohup
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:  # the runner waits for the first case's answer
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (130, "specfmt-conformance: interrupted; no report written\n")
