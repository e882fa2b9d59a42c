"""The specfmt command line: validate, inspect, schema; exit codes 0, 1 and 2."""

import json

import pytest
from jsonschema import Draft202012Validator

from builders import corpus_checkpoint, write_variant
from specfmt.cli import main
from specfmt.schemas import load


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
    assert out.splitlines()[0].startswith("warning: model.safetensors#/verifier_lm_head.weight:")
    assert "[hazard.stray_verifier_tensor]" in out


def test_validate_exits_1_on_errors_with_one_finding_per_line(tmp_path, capsys):
    path = corpus_checkpoint("head--mtp_qwen3", tmp_path / "ckpt")
    code, out = run(capsys, "validate", str(path), "--profile", "strict")
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == 8 and lines[-1].endswith("invalid under strict (7 errors, 0 warnings)")
    assert all(line.startswith("error: ") for line in lines[:-1])


def test_json_output_validates_against_the_findings_schema(tmp_path, capsys):
    path = corpus_checkpoint("head-converted--mtp_converted", tmp_path / "ckpt")
    code, out = run(capsys, "validate", str(path), "--profile", "strict", "--format", "json")
    report = json.loads(out)
    Draft202012Validator(load("findings.schema.json")).validate(report)
    assert code == 1 and report["valid"] is False and report["errors"] == 6


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
