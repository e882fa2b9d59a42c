"""The specfmt command line: validate, inspect, schema; exit codes 0, 1 and 2; help, reports and progress.
The failures at the CLI boundary are in test_cli_errors.py."""

import argparse
import io
import json
import sys

import pytest
from jsonschema import Draft202012Validator

from builders import corpus_checkpoint, draft_for, verifier_for, write_variant, write_verifier
from specfmt.cli import build_parser, main, schema_named, short_name
from specfmt.cli_common import Progress
from specfmt.findings import Finding, Report
from specfmt.schemas import load, schema_names


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_validate_exits_0_on_a_clean_checkpoint(tmp_path, capsys):
    path = write_variant("eagle3", tmp_path / "ckpt")
    code, out = run(capsys, "validate", str(path), "--profile", "strict")
    assert code == 0
    assert "valid under strict (0 errors, 0 warnings)" in out


def test_validate_exits_0_with_warnings_printed_under_compat(tmp_path, capsys):
    path = corpus_checkpoint("head--mtp_qwen3", tmp_path / "ckpt")
    code, out = run(capsys, "validate", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("warning: config.json#/verifier_hidden_state:")
    assert "[hazard.default_conflict]" in lines[0]
    assert lines[1].startswith("warning: model.safetensors#/verifier_lm_head.weight:")
    assert "[hazard.stray_verifier_tensor]" in lines[1]


def test_validate_exits_1_on_errors_with_one_finding_per_line(tmp_path, capsys):
    path = corpus_checkpoint("head--mtp_qwen3", tmp_path / "ckpt")
    code, out = run(capsys, "validate", str(path), "--profile", "strict")
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == 9 and lines[-1].endswith("invalid under strict (8 errors, 0 warnings)")
    assert all(line.startswith("error: ") for line in lines[:-1])


def test_json_output_validates_against_the_findings_schema(tmp_path, capsys):
    path = corpus_checkpoint("head-converted--mtp_converted", tmp_path / "ckpt")
    code, out = run(capsys, "validate", str(path), "--profile", "strict", "--format", "json")
    report = json.loads(out)
    Draft202012Validator(load("findings.schema.json")).validate(report)
    assert code == 1 and report["valid"] is False and report["errors"] == 7


def test_a_shape_message_names_expected_expression_and_found(tmp_path, capsys):
    path = write_variant("eagle3", tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    config["eagle_aux_hidden_state_layer_ids"] = [1, 3, 5, 6]
    (path / "config.json").write_text(json.dumps(config))
    code, out = run(capsys, "validate", str(path))
    assert code == 1
    assert ("error: model.safetensors#/fc.weight/shape: fc.weight shape; expected [32, 128] (= [H, A * H_t]), "
            "found [32, 96] [layout.fc_width]") in out


def test_inspect_prints_the_symbols_and_the_tensor_table(tmp_path, capsys):
    path = corpus_checkpoint("head-converted--eagle3_converted", tmp_path / "ckpt")
    code, out = run(capsys, "inspect", str(path))
    assert code == 0
    assert "algorithm:  eagle3" in out
    assert "symbols:    H=32, V=128, V_d=40, A=3, L=1" in out
    row = next(line for line in out.splitlines() if line.startswith("fc.weight"))
    assert row.split() == ["fc.weight", "fc", "float", "[32,", "96]", "[32,", "96]", "BF16", "ok"]
    assert any(line.startswith("embed_tokens.weight") and line.endswith("absent (optional)")
               for line in out.splitlines())


def test_inspect_json_carries_symbols_and_rows(tmp_path, capsys):
    path = write_variant("dspark_gated", tmp_path / "ckpt")
    code, out = run(capsys, "inspect", str(path), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["symbols"]["r"] == 16
    assert {row["status"] for row in data["tensors"]} == {"ok"}


def test_schema_lists_prints_and_locates_schemas(capsys):
    code, out = run(capsys, "schema")
    assert code == 0 and "config.schema.json" in out.split() and "layouts/eagle3.json" in out.split()
    code, out = run(capsys, "schema", "config.strict.schema")
    assert code == 0 and json.loads(out)["$id"].endswith("/v1.0/config.strict.schema.json")
    code, out = run(capsys, "schema", "eagle3", "--path")
    assert code == 0 and out.strip().endswith("layouts/eagle3.json")


def test_schema_with_an_unknown_name_is_a_usage_error(capsys):
    assert main(["schema", "nope"]) == 2


def test_an_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_validate_takes_several_paths_and_exits_1_when_any_has_an_error(tmp_path, capsys):
    clean = write_variant("eagle3", tmp_path / "clean")
    broken = corpus_checkpoint("head--mtp_qwen3", tmp_path / "broken")
    code, out = run(capsys, "validate", str(clean), str(broken), "--profile", "strict")
    summaries = [line for line in out.splitlines() if not line.startswith("error: ")]
    assert code == 1
    assert summaries == [f"{clean}: valid under strict (0 errors, 0 warnings)",
                         f"{broken}: invalid under strict (8 errors, 0 warnings)"]


def test_validate_json_of_several_paths_is_a_list_of_reports(tmp_path, capsys):
    paths = [str(write_variant(v, tmp_path / v)) for v in ("eagle3", "medusa")]
    code, out = run(capsys, "validate", *paths, "--format", "json")
    reports = json.loads(out)
    assert code == 0 and [r["path"] for r in reports] == paths
    for report in reports:
        Draft202012Validator(load("findings.schema.json")).validate(report)


def test_validate_quiet_prints_errors_and_the_summary_but_no_warning(tmp_path, capsys):
    path = corpus_checkpoint("head--mtp_qwen3", tmp_path / "ckpt")
    code, out = run(capsys, "validate", str(path), "-q")
    assert code == 0 and out == f"{path}: valid under compat (0 errors, 2 warnings)\n"
    code, out = run(capsys, "validate", str(path), "--quiet", "--profile", "strict")
    assert code == 1 and len(out.splitlines()) == 9


def test_the_summary_counts_one_error_and_one_warning_in_the_singular():
    error = Finding("config.json", "/a", "config.required", "m")
    warning = Finding("config.json", "/b", "hazard.d2t_missing", "m", severity="warning")
    assert Report("p", "compat", [error, warning]).summary() == "p: invalid under compat (1 error, 1 warning)"
    assert Report("p", "compat", [error, error, warning, warning]).summary().endswith("(2 errors, 2 warnings)")
    assert Report("p", "compat", []).summary().endswith("(0 errors, 0 warnings)")


def test_every_schema_document_has_a_unique_short_name_that_resolves_to_it():
    names = schema_names()
    shorts = [short_name(n) for n in names]
    assert len(set(shorts)) == len(names), shorts
    assert {"config", "config.strict", "findings", "safetensors", "codes", "layout", "eagle3"} <= set(shorts)
    assert all(schema_named(short) == name for short, name in zip(shorts, names, strict=True))


def test_schema_config_and_findings_print_their_documents(capsys):
    code, out = run(capsys, "schema", "config")
    assert code == 0 and json.loads(out)["$id"].endswith("/config.schema.json")
    code, out = run(capsys, "schema", "findings")
    assert code == 0 and json.loads(out)["$id"].endswith("/findings.schema.json")


def test_the_schema_list_shows_each_short_name_beside_its_file(capsys):
    code, out = run(capsys, "schema")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [[short_name(n), n] for n in schema_names()]


def test_an_unknown_schema_name_is_one_line_listing_the_names(capsys):
    assert main(["schema", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("specfmt schema: no schema named 'nope'; expected one of codes, config, ")
    assert err.count("\n") == 1


def subparsers() -> dict[str, argparse.ArgumentParser]:
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_argument_of_every_command_has_help():
    missing = [f"{name} {a.dest}" for name, p in subparsers().items() for a in p._actions if not a.help]
    assert missing == []


def test_help_shows_each_default_that_has_a_value(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0
    assert "(default: float32)" in out and "(default: 64)" in out and "(default: 0)" in out  # --seed 0 too
    assert "(default: None)" not in out and "(default: False)" not in out
    for name, parser in subparsers().items():
        for a in parser._actions:
            if a.default is not None and a.default is not False and a.default is not argparse.SUPPRESS:
                assert "default" in a.help, f"{name} {a.dest}"


def test_version_names_the_package_and_the_format(capsys):
    from specfmt import __version__
    from specfmt.schemas import VERSION

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"specfmt {__version__} (format {VERSION})\n"


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal_and_erases_it():
    stream = Terminal()
    bar = Progress(stream)
    bar.show("a")
    bar.show("b")
    bar.clear()
    assert stream.getvalue() == "\r\033[Ka\r\033[Kb\r\033[K"


def test_progress_writes_nothing_to_a_stream_that_is_not_a_terminal():
    stream = io.StringIO()
    bar = Progress(stream)
    bar.show("a")
    bar.clear()
    assert stream.getvalue() == ""


def test_validate_scan_values_shows_each_tensor_on_a_terminal_and_nothing_otherwise(tmp_path, capsys, monkeypatch):
    path = write_variant("medusa", tmp_path / "ckpt")
    code, _ = run(capsys, "validate", str(path), "--scan-values")
    assert code == 0 and capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr", Terminal())
    assert main(["validate", str(path), "--scan-values"]) == 0
    shown = sys.stderr.getvalue()
    assert "scanning model.safetensors: tensor 1/" in shown and shown.endswith("\r\033[K")


def test_generate_shows_the_tokens_so_far_on_a_terminal(tmp_path, capsys, monkeypatch):
    verifier, draft = write_verifier(tmp_path / "verifier"), write_variant("eagle3", tmp_path / "draft")
    argv = ["generate", "--verifier", str(verifier), "--draft", str(draft), "--prompt-ids", "1",
            "--max-new-tokens", "6"]
    assert main(argv) == 0 and capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr", Terminal())
    assert main(argv) == 0
    assert "generate: 6/6 tokens" in sys.stderr.getvalue()


def test_generate_reports_the_new_token_count_after_each_step():
    from specfmt.generate import generate
    from specfmt.proposal import Proposal

    verifier = verifier_for(0)
    counts = []
    result = generate(verifier, draft_for("eagle3", verifier), [1, 2], 9, Proposal("greedy", 2), progress=counts.append)
    assert len(counts) == len(result.stats.accepted)
    assert counts == sorted(counts) and counts[-1] >= 9
