"""benchmarks/ablation.py on the tiny verifier: two rows trained for a few steps on one cache and evaluated on a
tiny prompt file; the table has both rows with numbers, the rows left out say why, and a rerun reuses the
finished rows."""

import importlib.util
import json
from pathlib import Path

import pytest

from builders import write_prompt_ids, write_verifier

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_ablation_under_test", ROOT / "benchmarks" / "ablation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny verifier with a tokenizer, an EAGLE-3 datagen cache of it (aux ids 2, 3) and an eval prompt file."""
    pytest.importorskip("transformers")
    from specfmt.text import Text
    from specfmt.train.datagen import DataOptions, write_cache
    from specfmt.verifier import Verifier

    root = tmp_path_factory.mktemp("ablation")
    verifier_dir = write_verifier(root / "verifier", tokenizer=True, scale=5)
    prompts = write_prompt_ids(root / "prompts.jsonl", [6] * 24)
    opts = DataOptions([f"distill:{prompts}"], seq_len=64, max_new_tokens=12, batch=8, held_out=0.1)
    cache = write_cache(root / "cache", Verifier.from_pretrained(verifier_dir), Text.from_verifier(verifier_dir),
                        (2, 3), opts, lambda line: None)
    evals = write_prompt_ids(root / "eval.jsonl", [5, 7], seed=1)
    more = write_prompt_ids(root / "more.jsonl", [6] * 40, seed=2)
    opts = DataOptions([f"distill:{more}"], seq_len=64, max_new_tokens=12, batch=8, held_out=0.1)
    write_cache(root / "more", Verifier.from_pretrained(verifier_dir), Text.from_verifier(verifier_dir), (2, 3), opts,
                lambda line: None)
    return verifier_dir, cache, evals


def bench_argv(tiny, out: Path, *rows: str) -> list[str]:
    verifier_dir, cache, evals = tiny
    only = [part for row in rows for part in ("--only", row)]
    return ["--verifier", str(verifier_dir), "--data", str(cache), "--steps", "2", "--out", str(out),
            "--prompts", str(evals), "--max-new-tokens", "6", "--threads", "1", *only,
            "--train-flags=--verifier-name test/tiny --warmup 1 --save-every 1 --draft-vocab-size 64"]


def test_the_layer_rows_train_the_layer_they_name(tiny, tmp_path):
    bench = load_bench()
    assert bench.main(bench_argv(tiny, tmp_path, "norm-before-residual", "two-layers")) == 0
    configs = {row: json.loads((tmp_path / "rows" / row / "draft" / "config.json").read_text())
               for row in ("norm-before-residual", "two-layers")}
    assert configs["norm-before-residual"]["norm_before_residual"] is True
    assert configs["two-layers"]["transformer_layer_config"]["num_hidden_layers"] == 2


def test_the_ablation_table_has_a_row_of_numbers_per_row_run_and_a_reason_per_row_left_out(tiny, tmp_path):
    bench = load_bench()
    assert bench.main(bench_argv(tiny, tmp_path, "baseline", "steps-x2")) == 0
    lines = (tmp_path / "ablation.md").read_text().splitlines()
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ") for line in lines if line.startswith("| ")}
    assert [r for r in rows if r != "row"] == ["baseline", "steps-x2", *bench.LEFT_OUT]
    for name, steps in (("baseline", "2"), ("steps-x2", "4")):
        cells = [c.strip() for c in rows[name]]
        assert cells[2] == steps
        tau, acceptance, seconds = cells[3], cells[5], cells[6]
        assert 1.0 <= float(tau) <= 4.0 and len(acceptance.split(", ")) == 3 and float(seconds) >= 0
    assert rows["baseline"][1].strip() == "(baseline)" and rows["steps-x2"][1].strip() == "steps x2"
    assert rows["baseline"][4].strip() == "+0.00"
    results = json.loads((tmp_path / "ablation.json").read_text())
    assert results["schema"] == "specfmt.bench.ablation/1"
    assert [r["steps"] for r in results["rows"]] == [2, 4]
    log = (tmp_path / "rows" / "steps-x2" / "work" / "log.jsonl").read_text()
    logs = [json.loads(line) for line in log.splitlines()]
    assert max(r["step"] for r in logs if "loss" in r) == 4


def test_a_rerun_reads_the_finished_rows_back_and_trains_nothing(tiny, tmp_path, monkeypatch):
    bench = load_bench()
    assert bench.main(bench_argv(tiny, tmp_path, "baseline")) == 0
    first = (tmp_path / "ablation.json").read_text()
    monkeypatch.setattr(bench, "specfmt", lambda argv: pytest.fail(f"ran {argv[:2]} again"))
    assert bench.main(bench_argv(tiny, tmp_path, "baseline")) == 0
    assert (tmp_path / "ablation.json").read_text() == first


def test_a_row_whose_command_changed_is_trained_again_from_scratch(tiny, tmp_path, monkeypatch):
    bench = load_bench()
    assert bench.main(bench_argv(tiny, tmp_path, "baseline")) == 0
    calls = []
    monkeypatch.setattr(bench, "specfmt", lambda argv: calls.append(argv) or 1)
    argv = bench_argv(tiny, tmp_path, "baseline")
    assert bench.main([*argv[:5], "3", *argv[6:]]) == 1  # --steps 3
    assert calls[0][0] == "train" and calls[0][-1] == "--restart" and "3" in calls[0]
    assert "failed: specfmt train exited 1" in (tmp_path / "ablation.md").read_text()


def test_an_eval_that_failed_is_run_again_without_training_the_row_again(tiny, tmp_path, monkeypatch):
    bench = load_bench()
    real, calls = bench.specfmt, []
    monkeypatch.setattr(bench, "specfmt", lambda argv: calls.append(argv[0]) or (real(argv) if argv[0] == "train"
                                                                                 else 2))
    assert bench.main(bench_argv(tiny, tmp_path, "baseline")) == 1
    assert "failed: specfmt eval exited 2" in (tmp_path / "ablation.md").read_text()
    monkeypatch.setattr(bench, "specfmt", lambda argv: calls.append(argv[0]) or real(argv))
    assert bench.main(bench_argv(tiny, tmp_path, "baseline")) == 0
    assert calls == ["train", "eval", "eval"]
    assert "failed" not in (tmp_path / "ablation.md").read_text()


def test_an_interrupted_training_stops_the_harness_and_the_rerun_resumes_it_without_restart(tiny, tmp_path,
                                                                                           monkeypatch):
    bench = load_bench()
    calls = []
    monkeypatch.setattr(bench, "specfmt", lambda argv: calls.append(argv) or 130)
    assert bench.main(bench_argv(tiny, tmp_path, "baseline", "lr-3e-3")) == 130
    assert [argv[0] for argv in calls] == ["train"]
    monkeypatch.setattr(bench, "specfmt", lambda argv: calls.append(argv) or 1)
    assert bench.main(bench_argv(tiny, tmp_path, "baseline")) == 1
    assert calls[1] == calls[0] and "--restart" not in calls[1]


def test_the_epochs_given_to_train_reach_the_row_budget_over_every_cache(tiny, tmp_path):
    bench = load_bench()
    args = bench.parse_args(bench_argv(tiny, tmp_path) + ["--data", str(tiny[1]), "--batch", "2"])
    samples = 2 * json.loads((tiny[1] / "index.json").read_text())["samples"]
    argv = bench.train_argv(args, bench.Row((), budget=40), tmp_path)
    epochs = int(bench.flag_value(argv, "--epochs"))
    assert bench.flag_value(argv, "--max-steps") == "80"
    assert (epochs - 1) * (samples // 2) < 80 <= epochs * (samples // 2)


def test_data_that_is_not_a_datagen_cache_is_refused_in_one_line(tiny, tmp_path, capsys):
    bench = load_bench()
    with pytest.raises(SystemExit) as exit_:
        bench.main(bench_argv(tiny, tmp_path) + ["--data", str(tmp_path)])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("benchmarks/ablation.py: error: --data: expected datagen caches") and str(tmp_path) in last


def test_each_cache_adds_a_row_trained_on_that_cache_alone_for_the_same_steps(tiny, tmp_path):
    bench = load_bench()
    more = tiny[1].parent / "more"
    args = bench.parse_args(bench_argv(tiny, tmp_path) + ["--data", str(more), "--each-cache"])
    rows = bench.rows(args)
    assert list(rows)[-2:] == ["only-cache", "only-more"] and list(rows)[:-2] == list(bench.ROWS)
    whole, alone = (bench.train_argv(args, rows[name], tmp_path) for name in ("baseline", "only-more"))
    assert [whole[i + 1] for i, f in enumerate(whole) if f == "--data"] == [str(tiny[1]), str(more)]
    assert [alone[i + 1] for i, f in enumerate(alone) if f == "--data"] == [str(more)]
    assert bench.flag_value(whole, "--max-steps") == bench.flag_value(alone, "--max-steps") == "2"
    assert bench.describe(rows["only-more"]) == "data more only"


def test_an_unknown_row_name_is_refused_in_one_line_before_any_work(tiny, tmp_path, monkeypatch, capsys):
    bench = load_bench()
    monkeypatch.setattr(bench, "specfmt", lambda argv: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_:
        bench.main(bench_argv(tiny, tmp_path, "baseline", "lr-1"))
    assert exit_.value.code == 2 and not (tmp_path / "ablation.md").exists()
    assert capsys.readouterr().err.startswith(
        "benchmarks/ablation.py: error: --only lr-1: no such row; expected one of baseline, norm-before-residual,")
