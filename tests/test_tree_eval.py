"""Trees in `specfmt generate`, `specfmt eval` and the bench (spec/trees.md): the --tree grammar and its one-line
refusals, a checkpoint's own tree method, tree results beside chain results, and benchmarks/speculative.py --tree."""

import json
import sys

import pytest

from builders import draft_for, verifier_for, write_variant, write_verifier
from specfmt import tree
from specfmt.cli import main
from specfmt.cli_tree import parse_tree
from specfmt.eval_report import format_sets, format_summary
from specfmt.evaluate import evaluate
from specfmt.generate import generate_plain
from specfmt.proposal import Proposal
from test_bench_speculative import load_bench, prompt_file
from test_evaluate import usage_error
from test_lossless import zero_heads

PROMPTS = [[1, 5, 9], [2, 7], [3, 3, 3, 4]]


def test_dynamic_names_speculative_tokens_expansion_factor_and_depth_in_the_schema_order():
    assert parse_tree("dynamic:16,4,5") == tree.DynamicTree(speculative_tokens=16, expansion_factor=4, depth=5)


def test_static_with_three_counts_is_the_full_tree_of_the_v1_0_fields():
    assert parse_tree("static:4,2,3") == tree.full_tree(4, 2, 3)


def test_static_takes_a_json_path_list_inline_or_from_a_file(tmp_path):
    paths = tmp_path / "choices.json"
    paths.write_text("[[0], [1], [0, 0]]")
    expected = tree.StaticTree(((0,), (1,), (0, 0)))
    assert parse_tree("static:[[0],[1],[0,0]]") == expected
    assert parse_tree(f"static:@{paths}") == expected


@pytest.fixture
def dirs(tmp_path):
    prompts = prompt_file(tmp_path / "prompts.jsonl", PROMPTS)
    return write_verifier(tmp_path / "verifier", tokenizer=True), write_variant("eagle3", tmp_path / "draft"), prompts


def eval_args(verifier, draft, prompts, *more) -> list[str]:
    return ["eval", "--verifier", str(verifier), "--draft", str(draft), "--prompts", str(prompts),
            "--max-new-tokens", "8", "--threads", "1", *more]


def generate_args(verifier, draft, *more) -> list[str]:
    return ["generate", "--verifier", str(verifier), "--draft", str(draft), "--prompt-ids", "1", "5", "9",
            "--max-new-tokens", "12", *more]


@pytest.mark.parametrize(("value", "says"), [
    ("dynamic:16,4", "expected three integers >= 1 after dynamic: (T,K,D)"),
    ("static:0,2,3", "expected three integers >= 1 after static: (I,B,D)"),
    ("static:[[1]]", "path [1] has no earlier sibling [0]"),
    ("static:[[0],", "not a JSON list of paths"),
    ("static:@absent.json", "cannot read absent.json"),
    ("eagle:3", "expected dynamic:T,K,D"),
])
def test_eval_and_generate_refuse_a_tree_value_that_names_no_tree_in_one_line(dirs, capsys, value, says):
    verifier, draft, prompts = dirs
    assert says in usage_error(capsys, eval_args(verifier, draft, prompts, "--tree", value))
    assert says in usage_error(capsys, generate_args(verifier, draft, "--tree", value))


def test_a_tree_and_a_chain_length_together_are_refused_in_one_line(dirs, capsys):
    verifier, draft, prompts = dirs
    err = usage_error(capsys, eval_args(verifier, draft, prompts, "--k", "3", "--tree", "dynamic:8,2,3"))
    assert "--k 3 and --tree dynamic:8,2,3" in err


def test_a_tree_for_an_ngram_draft_is_refused_in_one_line_naming_trees_5(dirs, tmp_path, capsys):
    verifier, _, prompts = dirs
    ngram = write_variant("ngram", tmp_path / "ngram")
    for argv in (eval_args(verifier, ngram, prompts, "--tree", "dynamic:8,2,3"),
                 generate_args(verifier, ngram, "--tree", "static:2,2,2")):
        err = usage_error(capsys, argv)
        assert "ngram drafts cannot branch" in err and "TRE-5" in err


def test_generate_with_a_tree_gives_the_plain_greedy_tokens_and_reports_counters_per_depth(dirs, capsys):
    verifier, draft, _ = dirs
    assert main(generate_args(verifier, draft, "--tree", "dynamic:8,3,3", "--format", "json")) == 0
    out = json.loads(capsys.readouterr().out)
    from specfmt.verifier import Verifier

    assert out["tokens"] == generate_plain(Verifier.from_pretrained(verifier), [1, 5, 9], 12, Proposal())
    assert out["tree"] == {"proposal_type": "dynamic_tree", "speculative_tokens": 8, "expansion_factor": 3,
                           "depth": 3}
    assert out["stats"]["k"] == 3 and len(out["stats"]["acceptance_by_position"]) == 3
    assert out["stats"]["nodes_per_step"] == 8.0


def with_default_method(draft, method: dict):
    config = json.loads((draft / "config.json").read_text())
    config["speculators_config"]["proposal_methods"].append(method)
    config["speculators_config"]["default_proposal_method"] = method["proposal_type"]
    (draft / "config.json").write_text(json.dumps(config))
    return draft


def test_generate_runs_the_tree_of_a_checkpoint_whose_default_method_is_a_tree_unless_k_is_given(dirs, capsys):
    verifier, draft, _ = dirs
    with_default_method(draft, {"proposal_type": "static_tree", "initial_branching_factor": 3, "depth": 2})
    assert main(generate_args(verifier, draft, "--format", "json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tree"] == {"proposal_type": "static_tree", "paths": [list(p) for p in tree.full_tree(3, 2, 2).paths]}
    assert out["stats"]["nodes_per_step"] == 9.0  # 3 + 3 * 2, branching_factor defaulted by the schema to 2
    assert main(generate_args(verifier, draft, "--k", "2", "--format", "json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tree"] is None and out["stats"]["k"] == 2


def test_eval_measures_the_tree_of_a_checkpoint_whose_default_method_is_a_tree_unless_k_is_given(dirs, capsys):
    verifier, draft, prompts = dirs
    with_default_method(draft, {"proposal_type": "dynamic_tree", "speculative_tokens": 6, "expansion_factor": 2})
    assert main(eval_args(verifier, draft, prompts, "--format", "json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tree"] == {"proposal_type": "dynamic_tree", "speculative_tokens": 6, "expansion_factor": 2,
                              "depth": 6}  # depth defaulted by the schema
    assert main(eval_args(verifier, draft, prompts, "--k", "2", "--format", "json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tree"] is None and result["k"] == 2 and result["bound"] is not None


def test_a_default_tree_method_of_an_ngram_draft_is_refused_in_one_line_that_offers_k(tmp_path, capsys):
    verifier = write_verifier(tmp_path / "verifier", tokenizer=True)
    ngram = with_default_method(write_variant("ngram", tmp_path / "ngram"), {"proposal_type": "dynamic_tree"})
    err = usage_error(capsys, generate_args(verifier, ngram))
    assert "default proposal method dynamic_tree" in err and "pass --k for a chain" in err


def test_a_tree_evaluated_on_random_weights_decodes_the_plain_text_and_has_no_bound():
    verifier = verifier_for(0)
    result = evaluate(verifier, draft_for("eagle3", verifier, 0), PROMPTS, 3, 12, (), repeats=2,
                      shape=tree.DynamicTree(12, 4, 3))
    assert result["identical"] == len(PROMPTS) and result["tokens_speculative"] == 12 * len(PROMPTS)
    assert result["tree"]["proposal_type"] == "dynamic_tree" and result["k"] == 3
    assert len(result["acceptance_by_position"]) == 3 and result["nodes_per_step"] == 12.0
    assert result["bound"] is None and result["alpha"] is None and result["speedup_over_bound"] is None
    assert result["c"] > 0 and result["r"] > 0
    json.dumps(result, allow_nan=False)
    assert "bound                   none for a tree" in format_sets([result])


def test_a_deeper_tree_accepts_more_than_the_chain_when_the_draft_agrees_with_the_verifier():
    taus = {}
    for name, k, shape in (("chain", 3, None), ("tree", 3, tree.full_tree(2, 1, 4))):  # two branches of depth 4
        verifier = verifier_for(0)
        draft = draft_for("eagle3", verifier, 0)
        zero_heads(draft, verifier)  # both pick token 0 everywhere: every draft at draw 0 is accepted
        result = evaluate(verifier, draft, PROMPTS, k, 12, (), repeats=2, shape=shape)
        taus[name] = result["tau"], result["acceptance_by_position"]
    assert taus["chain"][1] == [1.0, 1.0, 1.0] and taus["tree"][1] == [1.0, 1.0, 1.0, 1.0]
    assert taus["tree"][0] > taus["chain"][0]


def test_the_summary_row_of_a_tree_shows_no_bound():
    row = {"prompt_set": "set", "prompts": 2, "tau": 2.0, "speedup": 1.5, "bound": None,
           "acceptance_by_position": [0.5, 0.25]}
    assert format_summary([row]).splitlines()[1].split()[4] == "-"


def test_the_bench_evaluates_each_tree_beside_the_chains_and_plots_speedup_against_nodes(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    verifier = write_verifier(tmp_path / "verifier", tokenizer=True)
    draft = write_variant("eagle3", tmp_path / "draft")
    a = prompt_file(tmp_path / "a.jsonl", [[1, 5, 9], [2, 7]])
    monkeypatch.setattr(sys, "argv", ["speculative.py", "--verifier", str(verifier), "--draft", str(draft),
                                      "--prompts", str(a), "--k", "1", "2", "--tree", "dynamic:6,2,3",
                                      "--tree", "static:2,2,2", "--max-new-tokens", "4", "--threads", "1",
                                      "--out", str(tmp_path / "bench")])
    load_bench().main()
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [(r["tree"]["proposal_type"], r["k"], r["nodes_per_step"]) for r in results["trees"]] == [
        ("dynamic_tree", 3, 6.0), ("static_tree", 2, 6.0)]
    assert [r["spec"] for r in results["trees"]] == ["dynamic:6,2,3", "static:2,2,2"]
    assert all(r["prompt_set"] == str(a) and r["bound"] is None for r in results["trees"])
    assert (tmp_path / "bench" / "speedup_vs_nodes.png").read_bytes()[:4] == b"\x89PNG"


def test_the_bench_refuses_a_tree_that_names_no_tree_in_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    verifier = write_verifier(tmp_path / "verifier", tokenizer=True)
    a = prompt_file(tmp_path / "a.jsonl", [[1, 5, 9]])
    monkeypatch.setattr(sys, "argv", ["speculative.py", "--verifier", str(verifier), "--draft", str(tmp_path),
                                      "--prompts", str(a), "--tree", "dynamic:6,2"])
    with pytest.raises(SystemExit) as exit_:
        load_bench().main()
    assert exit_.value.code == 2
    assert "--tree dynamic:6,2: expected three integers" in capsys.readouterr().err
