"""kill -9 at random points of `specfmt datagen` and `specfmt train` (tests/killing.py), each replacing an old
output, and inside the overwrite window (the old output moved aside, the new one not yet in place): the cache,
the draft and the training state each hold the old complete output or the new complete one; the next run
(specfmt.publish.recover) removes what the killed one left; a resumed train never restarts from step 0: it
resumes from its last saved state. Slow: a tiny verifier and data, about a minute a command on 2 cores."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from builders import V, write_verifier
from killing import kill_held, kill_series, leftovers, run, tree
from specfmt.cli import main
from specfmt.publish import OLD, recover

pytestmark = pytest.mark.slow

KILLS = 20  # random kills a command, half through each swap path
SAVED = 4  # the step of the training state every kill run starts from


def write_data(root: Path) -> tuple[Path, Path]:
    verifier = write_verifier(root / "verifier", tokenizer=True, scale=5)
    prompts = root / "prompts.jsonl"
    g = torch.Generator().manual_seed(0)
    prompts.write_text("".join(json.dumps({"prompt_ids": torch.randint(0, V, (6,), generator=g).tolist()}) + "\n"
                               for _ in range(24)))
    return verifier, prompts


def datagen_argv(verifier: Path, prompts: Path, out: Path, *extra: str) -> list[str]:
    return ["datagen", "--verifier", str(verifier), "--data", f"distill:{prompts}", "--out", str(out),
            "--seq-len", "32", "--max-new-tokens", "6", "--gen-batch", "8", "--held-out", "0.1", "--threads", "1",
            *extra]


def aside_or(path: Path, *complete: dict) -> str:
    """Assert that `path` holds one of the complete trees, or is missing with one of them moved aside (inside
    the overwrite window); recover as the next run does and assert again. Which state was seen."""
    state, aside = tree(path), [name for name in leftovers(path) if f".{OLD}-" in name]
    if state == {} and aside:
        assert len(aside) == 1 and tree(path.parent / aside[0]) in complete
        seen = "aside"
    else:
        assert state in complete, sorted(state)
        seen = ["old", "new"][complete.index(state)] if len(complete) == 2 else "complete"
    recover(path)
    assert tree(path) in complete and leftovers(path) == []
    return seen


class DatagenTarget:
    """datagen rewriting an old cache (made with --limit 4) with the full prompt set."""

    def __init__(self, root: Path):
        self.root, (verifier, prompts) = root, write_data(root)
        self.out, self.old_copy = root / "cache", root / "old-cache"
        assert main(datagen_argv(verifier, prompts, self.old_copy, "--limit", "4")) == 0
        self.old = tree(self.old_copy)
        self.argv = datagen_argv(verifier, prompts, self.out)
        code, err, _ = run(self.argv, root)
        assert code == 0, err
        self.new = tree(self.out)
        assert self.new and self.new != self.old
        self.reset()

    def reset(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        shutil.copytree(self.old_copy, self.out)

    def check(self) -> str:
        seen = aside_or(self.out, self.old, self.new)
        self.reset()
        return seen


class TrainTarget:
    """train resuming from a state saved at step SAVED, replacing an old draft that train wrote (another seed's)."""

    def __init__(self, root: Path):
        self.root, (verifier, prompts) = root, write_data(root)
        cache = root / "cache"
        assert main(datagen_argv(verifier, prompts, cache)) == 0
        self.out, self.work = root / "draft", root / "draft.work"
        base = ["train", "eagle3", "--verifier", str(verifier), "--data", str(cache), "--verifier-name", "test/tiny",
                "--batch", "2", "--warmup", "1", "--threads", "1", "--draft-vocab-size", "64", "--val-prompts", "0",
                "--save-dtype", "float32"]
        assert main([*base, "--out", str(root / "old-draft"), "--max-steps", "2", "--seed", "1"]) == 0
        self.old = tree(root / "old-draft")
        self.argv = [*base, "--out", str(self.out), "--epochs", "2", "--max-steps", "10", "--save-every", "2"]
        self.saved = root / "saved.work"
        self.stop_at(SAVED + 1)
        shutil.copytree(self.work, self.saved)
        self.reset()
        code, err, _ = run(self.argv, root)
        assert code == 0 and f"resuming from step {SAVED}" in err, err
        self.new = tree(self.out)
        self.state = tree(self.work / "checkpoint")
        self.reset()

    def stop_at(self, step: int) -> None:
        """Train in this process until `step`, then stop as a Ctrl-C would: the state of step - 1 is saved."""
        import specfmt.train.commands as commands

        def interrupt(record, total):
            if record.get("step") == step:
                raise KeyboardInterrupt

        shown, commands.show = commands.show, interrupt
        try:
            assert main(self.argv) == 130
        finally:
            commands.show = shown

    def reset(self) -> None:
        for path, copy in ((self.out, self.root / "old-draft"), (self.work, self.saved)):
            shutil.rmtree(path, ignore_errors=True)
            shutil.copytree(copy, path)

    def check(self) -> str:
        """The draft is the old or the new one; the state is complete, at step SAVED or later, never lost."""
        seen = aside_or(self.out, self.old, self.new)
        checkpoint = self.work / "checkpoint"
        recover(checkpoint)
        step = json.loads((checkpoint / "state.json").read_text())["step"]
        assert SAVED <= step <= 10 and {"state.json", "optimizer.safetensors", "draft/model.safetensors",
                                         "draft/config.json"} <= tree(checkpoint).keys()
        assert leftovers(checkpoint) == []
        self.reset()
        return f"{seen}@{step}"


def assert_series(target, seen: list[str]) -> None:
    for fallback in (False, True):
        landed = kill_series(target.argv, target.root, lambda: seen.append(target.check()), kills=KILLS // 2,
                             slow=0.02, fallback=fallback, seed=len(seen))
        assert len(landed) >= KILLS // 4, f"only {len(landed)} of {KILLS // 2} kills landed before the exit"


@pytest.fixture(scope="module")
def datagen(tmp_path_factory):
    return DatagenTarget(tmp_path_factory.mktemp("kill-datagen"))


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    return TrainTarget(tmp_path_factory.mktemp("kill-train"))


def test_a_kill_at_any_point_of_datagen_leaves_the_old_or_the_new_cache(datagen):
    seen = []
    assert_series(datagen, seen)
    print("datagen", seen)
    assert "old" in seen and "new" in seen, seen


def test_a_kill_inside_datagens_overwrite_window_is_undone_by_a_rerun(datagen):
    target = datagen
    target.reset()
    assert kill_held(target.argv, target.root, f".{OLD}-", fallback=True), "the old cache was never moved aside"
    assert not target.out.exists() and len(leftovers(target.out)) == 2  # the old cache aside, the new staged
    code, err, _ = run(target.argv, target.root)
    assert code == 0, err
    assert tree(target.out) == target.new and leftovers(target.out) == []


def test_a_kill_at_any_point_of_train_keeps_its_saved_state_and_the_old_or_new_draft(training):
    seen = []
    assert_series(training, seen)
    print("train", seen)
    steps = [int(s.partition("@")[2]) for s in seen]
    assert any(s.startswith("old") for s in seen) and any(s.startswith("new") for s in seen), seen
    assert max(steps) > SAVED, seen  # kills landed after later states were saved too


def test_a_kill_inside_the_training_states_overwrite_window_resumes_from_the_saved_step(training):
    target = training
    target.reset()
    checkpoint = target.work / "checkpoint"
    assert kill_held(target.argv, target.root, f".{OLD}-", fallback=True), "the state was never moved aside"
    assert not checkpoint.exists() and len(leftovers(checkpoint)) == 2  # the saved state aside, the next staged
    code, err, _ = run(target.argv, target.root)
    assert code == 0, err
    resumed = int(re.search(r"resuming from step (\d+)", err).group(1))
    assert resumed == SAVED and tree(target.out) == target.new and tree(checkpoint) == target.state
    assert leftovers(checkpoint) == [] and leftovers(target.out) == []
