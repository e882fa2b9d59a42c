"""specfmt.evaluate and `specfmt eval`: the Leviathan estimates on hand-computed numbers, plain against
speculative decoding on a tiny verifier, and the command line's results and usage errors."""

import json

import pytest

from builders import draft_for, verifier_for, write_variant, write_verifier
from specfmt.cli import main
from specfmt.evaluate import alpha_mle, evaluate, expected_tokens, leviathan_bound

PROMPTS = [[1, 5, 9], [2, 7], [3, 3, 3, 4], [10, 20, 30]]


def test_alpha_mle_is_one_when_every_step_accepts_all_drafts():
    assert alpha_mle([3, 3, 3], 3) == 1.0


def test_alpha_mle_is_zero_when_no_draft_is_accepted():
    assert alpha_mle([0, 0], 3) == 0.0


def test_alpha_mle_counts_accepted_drafts_over_accepted_plus_rejecting_steps():
    # sum(n) = 4; steps with n < 3: [1, 0] -> 2; alpha = 4 / (4 + 2)
    assert alpha_mle([1, 3, 0], 3) == pytest.approx(4 / 6)


def test_alpha_mle_of_no_step_is_zero():
    assert alpha_mle([], 3) == 0.0


def test_expected_tokens_sums_the_geometric_series():
    assert expected_tokens(0.5, 2) == pytest.approx(1 + 0.5 + 0.25)
    assert expected_tokens(0.0, 4) == 1.0
    assert expected_tokens(1.0, 3) == 4.0


def test_leviathan_bound_divides_expected_tokens_by_the_step_cost():
    # alpha 0.5, k 2: 1.75 tokens per step; cost 2 * 0.125 + 1.0 = 1.25 plain steps
    assert leviathan_bound(0.5, 2, 0.125, 1.0) == pytest.approx(1.4)
    assert leviathan_bound(1.0, 3, 0.0, 2.0) == pytest.approx(2.0)


def test_evaluate_reports_identical_tokens_and_acceptance_of_length_k_in_float32():
    verifier = verifier_for(0)
    draft = draft_for("eagle3", verifier)
    result = evaluate(verifier, draft, PROMPTS, 3, 12, (), repeats=3)
    assert result["identical"] == len(PROMPTS) and result["mismatches"] == []
    assert len(result["acceptance_by_position"]) == 3 and result["k"] == 3
    assert result["tokens_per_s_plain"] > 0 and result["tokens_per_s_speculative"] > 0
    assert result["tokens_plain"] == result["tokens_speculative"] == 12 * len(PROMPTS)
    assert result["tau"] >= 1.0 and result["c"] > 0 and result["r"] > 0
    assert result["bound"] == pytest.approx(leviathan_bound(result["alpha"], 3, result["c"], result["r"]))
    json.dumps(result, allow_nan=False)


@pytest.fixture
def dirs(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_ids": p}) + "\n" for p in PROMPTS))
    return write_verifier(tmp_path / "verifier", tokenizer=True), write_variant("eagle3", tmp_path / "draft"), prompts


def eval_args(verifier, draft, prompts, *more) -> list[str]:
    return ["eval", "--verifier", str(verifier), "--draft", str(draft), "--prompts", str(prompts),
            "--max-new-tokens", "8", "--threads", "1", *more]


def test_eval_writes_the_result_json_and_an_acceptance_png(dirs, tmp_path, capsys):
    out, png = tmp_path / "results.json", tmp_path / "acceptance.png"
    code = main(eval_args(*dirs, "--k", "2", "--out", str(out), "--plot", str(png)))
    result = json.loads(out.read_text())
    assert code == 0
    assert result["k"] == 2 and result["prompts"] == len(PROMPTS) and result["identical"] == len(PROMPTS)
    assert result["threads"] == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "speedup" in capsys.readouterr().out


def test_eval_reads_text_prompts_with_the_verifier_tokenizer(dirs, tmp_path, capsys):
    verifier, draft, _ = dirs
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("w1 w5 w9\nw2 w7\n")
    code = main(eval_args(verifier, draft, prompts, "--format", "json"))
    assert code == 0
    assert json.loads(capsys.readouterr().out)["prompts"] == 2


def usage_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_eval_refuses_a_missing_verifier_directory_in_one_line(dirs, tmp_path, capsys):
    _, draft, prompts = dirs
    assert "--verifier" in usage_error(capsys, eval_args(tmp_path / "absent", draft, prompts))


def test_eval_refuses_an_absent_prompt_file_in_one_line(dirs, tmp_path, capsys):
    verifier, draft, _ = dirs
    assert "no such prompt file" in usage_error(capsys, eval_args(verifier, draft, tmp_path / "absent.jsonl"))


def test_eval_refuses_more_drafts_than_a_medusa_draft_has_heads_in_one_line(dirs, tmp_path, capsys):
    verifier, _, prompts = dirs
    medusa = write_variant("medusa", tmp_path / "medusa")
    err = usage_error(capsys, eval_args(verifier, medusa, prompts, "--k", "5"))
    assert "medusa cannot propose 5 tokens with 3 heads" in err


def test_eval_refuses_text_prompts_without_a_tokenizer_in_one_line(tmp_path, capsys):
    verifier = write_verifier(tmp_path / "verifier")
    draft = write_variant("eagle3", tmp_path / "draft")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello\n")
    assert "tokenizer.json" in usage_error(capsys, eval_args(verifier, draft, prompts))


def test_eval_prints_the_findings_of_a_draft_with_errors_and_exits_1(dirs, capsys):
    verifier, draft, prompts = dirs
    (draft / "model.safetensors").unlink()
    assert main(eval_args(verifier, draft, prompts)) == 1
    assert "[weights.missing]" in capsys.readouterr().out


def test_a_mismatch_reports_the_first_new_token_that_differs():
    from specfmt.evaluate import _aggregate

    runs = [{"plain": [1, 2, 3], "speculative": [1, 2, 3], "accepted": [2], "t_plain": 1.0, "t_speculative": 1.0},
            {"plain": [1, 2, 3], "speculative": [1, 9, 9], "accepted": [1], "t_plain": 1.0, "t_speculative": 1.0},
            {"plain": [4, 5], "speculative": [4, 5, 6], "accepted": [2], "t_plain": 1.0, "t_speculative": 1.0}]
    result = _aggregate(runs, {"c": 0.1, "r": 1.0}, 2)
    assert result["mismatches"] == [1, 2] and result["first_difference"] == [1, 2]


def test_timing_warning_names_the_load_and_the_cores_when_the_load_exceeds_the_cores(monkeypatch):
    import specfmt.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module.os, "getloadavg", lambda: (9.5, 9.0, 8.0))
    monkeypatch.setattr(evaluate_module, "usable_cores", lambda: 2)
    line = evaluate_module.timing_warning()
    assert line.startswith("warning: load average 9.50 exceeds the 2 usable cores") and "unreliable" in line


def test_timing_warning_is_none_on_a_machine_no_busier_than_its_cores(monkeypatch):
    import specfmt.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module.os, "getloadavg", lambda: (2.0, 1.0, 1.0))
    monkeypatch.setattr(evaluate_module, "usable_cores", lambda: 2)
    assert evaluate_module.timing_warning() is None


def test_the_result_json_carries_the_timing_warning_of_a_busy_machine(monkeypatch):
    import specfmt.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    verifier = verifier_for(0)
    result = evaluate(verifier, draft_for("eagle3", verifier), PROMPTS[:1], 2, 4, (), repeats=1)
    assert result["timing_warning"].startswith("warning: load average 64.00 exceeds the")


def test_eval_prints_one_progress_line_per_prompt_on_stderr_with_tokens_and_tau(dirs, capsys, monkeypatch):
    import specfmt.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "timing_warning", lambda: None)
    assert main(eval_args(*dirs, "--k", "2", "--device", "cpu")) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1] for line in lines] == [f" prompt {i}/{len(PROMPTS)}" for i in range(1, 5)]
    assert lines[-1].startswith(f"eval: prompt 4/4: {8 * len(PROMPTS)} tokens, tau ") and lines[-1].endswith("so far")


def test_eval_warns_on_stderr_and_in_the_result_when_the_load_exceeds_the_cores(dirs, tmp_path, capsys, monkeypatch):
    import specfmt.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module.os, "getloadavg", lambda: (48.0, 48.0, 48.0))
    monkeypatch.setattr(evaluate_module, "usable_cores", lambda: 2)
    out = tmp_path / "result.json"
    assert main(eval_args(*dirs, "--limit", "1", "--out", str(out))) == 0
    warning = "warning: load average 48.00 exceeds the 2 usable cores"
    assert f"eval: {warning}" in capsys.readouterr().err
    assert json.loads(out.read_text())["timing_warning"].startswith(warning)


def test_eval_with_two_prompt_sets_writes_a_result_per_set_in_order_and_a_summary_row_each(dirs, tmp_path, capsys,
                                                                                       monkeypatch):
    import specfmt.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "timing_warning", lambda: None)
    verifier, draft, prompts = dirs
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"prompt_ids": [4, 4, 8]}) + "\n")
    out, png = tmp_path / "results.json", tmp_path / "acceptance.png"
    assert main(eval_args(verifier, draft, prompts, "--prompts", str(other), "--k", "2", "--out", str(out),
                          "--plot", str(png))) == 0
    document, printed = json.loads(out.read_text()), capsys.readouterr()
    assert printed.err.splitlines()[-1].startswith(f"eval: {other}: prompt 1/1: ")
    assert document["schema"] == "specfmt.eval.sets/1"
    assert [(r["prompt_set"], r["prompts"], r["k"]) for r in document["sets"]] == [(str(prompts), 4, 2),
                                                                                 (str(other), 1, 2)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = printed.out.split("\n\n")[-1].splitlines()
    assert summary[0].split()[:2] == ["prompt", "set"] and [row.split()[0] for row in summary[1:]] == [
        str(prompts), str(other)]


def test_eval_with_one_prompt_set_writes_the_result_itself_tagged_with_its_set(dirs, tmp_path):
    out = tmp_path / "results.json"
    assert main(eval_args(*dirs, "--limit", "1", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    assert result["schema"] == "specfmt.eval/1" and result["prompt_set"] == str(dirs[2])


@pytest.fixture
def tiny_evalset(monkeypatch):
    """specfmt.evalsets with one more set, "tiny", of the prompt_ids records of PROMPTS."""
    from specfmt import evalsets

    monkeypatch.setitem(evalsets.EVALSETS, "tiny", lambda: [{"prompt_ids": p} for p in PROMPTS])


def test_eval_reads_an_evaluation_set_named_with_evalset_and_limits_it(dirs, tmp_path, tiny_evalset):
    verifier, draft, _ = dirs
    out = tmp_path / "results.json"
    assert main(eval_args(verifier, draft, "evalset:tiny", "--limit", "3", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    assert result["prompt_set"] == "evalset:tiny" and result["prompts"] == 3


def test_eval_refuses_an_unknown_evaluation_set_in_one_line_naming_it(dirs, capsys):
    verifier, draft, _ = dirs
    err = usage_error(capsys, eval_args(verifier, draft, "evalset:absent"))
    assert "--prompts evalset:absent: unknown evaluation set 'absent'; known: python-docs" in err


def test_eval_reads_the_python_docs_evaluation_set_with_the_verifier_tokenizer(dirs, tmp_path):
    verifier, draft, _ = dirs
    out = tmp_path / "results.json"
    assert main(eval_args(verifier, draft, "evalset:python-docs", "--limit", "1", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    assert result["prompt_set"] == "evalset:python-docs" and result["prompts"] == 1


def test_eval_refuses_the_same_prompt_set_given_twice_in_one_line(dirs, capsys):
    err = usage_error(capsys, eval_args(*dirs, "--prompts", str(dirs[2])))
    assert "given twice" in err


def test_the_summary_has_one_row_per_set_with_its_tau_speedup_and_acceptance():
    from specfmt.eval_report import format_summary

    row = {"prompts": 16, "tau": 1.5, "speedup": 1.2, "bound": 1.3, "acceptance_by_position": [0.4, 0.1, 0.0]}
    lines = format_summary([{"prompt_set": "evalset:python-docs", **row},
                            {"prompt_set": "evalset:chat", **row, "tau": 1.25}]).splitlines()
    assert lines[1].split() == ["evalset:python-docs", "16", "1.500", "1.200x", "1.300x", "[0.400,", "0.100,",
                                "0.000]"]
    assert lines[2].split()[:3] == ["evalset:chat", "16", "1.250"]
