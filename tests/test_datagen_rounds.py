"""datagen answers several stored batches in one generate_batch call (datagen.ROUND), its rows refilled across
them: the cache equals one call per batch, and a killed round resumes to the uninterrupted cache."""

import pytest

from builders import datagen_setup
from specfmt.train import datagen
from specfmt.train.answers import answers_dir
from specfmt.train.datagen import DataOptions, write_cache

GENERATE_BATCH = datagen.generate_batch  # the real one, whichever wrapper a test sets


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny float32 verifier and 30 prompts, 25 of them for training: 4 batches of 8 (the last of 1)."""
    return datagen_setup(tmp_path_factory.mktemp("rounds"))


def run(tiny, monkeypatch, out: str, rounds: int, temperature: float = 0.0, fail_at: int | None = None):
    """write_cache with `rounds` batches per call; the row count of each call; call fail_at (from 1) raises."""
    root, verifier, text, prompts = tiny
    calls = []

    def generate(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return GENERATE_BATCH(*args, **kwargs)

    monkeypatch.setattr(datagen, "generate_batch", generate)
    monkeypatch.setattr(datagen, "ROUND", rounds)
    opts = DataOptions([f"distill:{prompts}"], seq_len=64, max_new_tokens=12, batch=8, temperature=temperature,
                       held_out=0.1)
    write_cache(root / out, verifier, text, (1, 2), opts, lambda line: None)
    return calls, (root / out / "documents.jsonl").read_text()


def test_a_round_of_batches_answers_each_prompt_as_one_call_per_batch_does(tiny, monkeypatch):
    calls, rounds = run(tiny, monkeypatch, "rounds-4", 4)
    single_calls, single = run(tiny, monkeypatch, "rounds-1", 1)
    assert (calls, single_calls) == ([25], [8, 8, 8, 1])
    assert rounds == single and len(rounds.splitlines()) == 25  # the 8 rows were refilled with 8, 8 and 1 prompts


def test_a_datagen_killed_in_its_second_round_resumes_to_the_uninterrupted_cache(tiny, monkeypatch):
    root = tiny[0]
    with pytest.raises(KeyboardInterrupt):
        run(tiny, monkeypatch, "killed", 2, 0.8, fail_at=2)
    assert len(list(answers_dir(root / "killed").iterdir())) == 2  # the first round's two batches
    resumed_calls, resumed = run(tiny, monkeypatch, "killed", 2, 0.8)
    whole_calls, whole = run(tiny, monkeypatch, "whole", 2, 0.8)
    assert (resumed_calls, whole_calls) == ([9], [16, 9]) and resumed == whole
