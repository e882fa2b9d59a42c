"""specfmt generate: text or ids in, tokens and statistics out, equal to plain greedy decoding."""

import json

import pytest

from builders import verifier_for, write_variant, write_verifier
from specfmt.cli import main
from specfmt.generate import generate_plain
from specfmt.proposal import Proposal


@pytest.fixture
def dirs(tmp_path):
    return write_verifier(tmp_path / "verifier", tokenizer=True), write_variant("eagle3", tmp_path / "draft")


def test_generate_with_prompt_ids_prints_the_plain_greedy_tokens_as_json(dirs, capsys):
    verifier_dir, draft_dir = dirs
    code = main(["generate", "--verifier", str(verifier_dir), "--draft", str(draft_dir), "--prompt-ids", "1", "5",
                 "9", "--max-new-tokens", "24", "--k", "2", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["tokens"] == generate_plain(verifier_for(0), [1, 5, 9], 24, Proposal())
    assert out["stats"]["k"] == 2 and len(out["stats"]["acceptance_by_position"]) == 2
    assert out["stats"]["tau"] >= 1.0


def test_generate_with_text_uses_the_verifier_tokenizer(dirs, capsys):
    verifier_dir, draft_dir = dirs
    code = main(["generate", "--verifier", str(verifier_dir), "--draft", str(draft_dir), "--prompt", "w1 w5 w9",
                 "--max-new-tokens", "8"])
    text, stats = capsys.readouterr().out.split("--\n")
    expected = generate_plain(verifier_for(0), [1, 5, 9], 8, Proposal())
    assert code == 0
    assert text.split() == [f"w{t}" for t in expected]
    assert stats.startswith("steps ")


def test_generate_refuses_a_draft_with_errors_and_prints_the_findings(dirs, capsys):
    verifier_dir, draft_dir = dirs
    (draft_dir / "model.safetensors").unlink()
    code = main(["generate", "--verifier", str(verifier_dir), "--draft", str(draft_dir), "--prompt-ids", "1"])
    assert code == 1
    assert "[weights.missing]" in capsys.readouterr().out


def test_generate_with_sampling_runs_and_reports_statistics(dirs, capsys):
    verifier_dir, draft_dir = dirs
    code = main(["generate", "--verifier", str(verifier_dir), "--draft", str(draft_dir), "--prompt-ids", "1", "2",
                 "--proposal", "sampling", "--temperature", "0.8", "--max-new-tokens", "16", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out["tokens"]) == 16 and out["proposal"] == "sampling"
