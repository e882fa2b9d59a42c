"""benchmarks/speculative.py on the tiny verifier: several prompt sets in one run, the first at every k and
every set at the main k, each tagged with its set in results.json."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from builders import write_variant, write_verifier

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_speculative_under_test",
                                                  ROOT / "benchmarks" / "speculative.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def prompt_file(path: Path, prompts: list[list[int]]) -> Path:
    path.write_text("".join(json.dumps({"prompt_ids": p}) + "\n" for p in prompts))
    return path


def test_the_bench_measures_the_first_set_at_every_k_and_every_set_at_the_main_k(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    verifier = write_verifier(tmp_path / "verifier", tokenizer=True)
    draft = write_variant("eagle3", tmp_path / "draft")
    a = prompt_file(tmp_path / "a.jsonl", [[1, 5, 9], [2, 7], [4, 4]])
    b = prompt_file(tmp_path / "b.jsonl", [[3, 3, 3]])
    monkeypatch.setattr(sys, "argv", ["speculative.py", "--verifier", str(verifier), "--draft", str(draft),
                                      "--prompts", str(a), "--prompts", str(b), "--k", "1", "2", "--main-k", "2",
                                      "--max-new-tokens", "4", "--limit", "2", "--threads", "1",
                                      "--out", str(tmp_path / "bench")])
    load_bench().main()
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert results["schema"] == "specfmt.bench.speculative/2" and results["main_k"] == 2
    assert [(r["prompt_set"], r["k"], r["prompts"]) for r in results["runs"]] == [(str(a), 1, 2), (str(a), 2, 2)]
    assert [(r["prompt_set"], r["k"], r["prompts"]) for r in results["sets"]] == [(str(a), 2, 2), (str(b), 2, 1)]
    assert all(r["threads"] == 1 and r["dtype"] == "bfloat16" for r in results["sets"])
    summary = capsys.readouterr().out.split("every set at k = 2")[1].splitlines()
    assert [row.split()[0] for row in summary[2:4]] == [str(a), str(b)]


def test_the_bench_refuses_a_prompt_set_given_twice_in_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    verifier = write_verifier(tmp_path / "verifier", tokenizer=True)
    a = prompt_file(tmp_path / "a.jsonl", [[1, 5, 9]])
    monkeypatch.setattr(sys, "argv", ["speculative.py", "--verifier", str(verifier), "--draft", str(tmp_path),
                                      "--prompts", str(a), "--prompts", str(a)])
    with pytest.raises(SystemExit) as exit_:
        load_bench().main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().endswith("given twice in " + str([str(a), str(a)]))
