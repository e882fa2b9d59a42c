"""kill -9 at random points of save (through `specfmt convert`), `specfmt export` and `specfmt upgrade`, each
replacing an old output with --overwrite, and inside the overwrite window (the old output moved aside, the new
one not yet in place): the target holds the old complete output or the new complete output, byte for byte; the
next run (specfmt.publish.recover, the first thing it does) removes what the killed one left, and a rerun of the
same command publishes the new output with nothing beside it. Slow: about 20 s a command on 2 cores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builders import write_variant, write_verifier
from killing import kill_held, kill_series, leftovers, run, tree
from specfmt.publish import OLD, recover

pytestmark = pytest.mark.slow

KILLS = 20  # random kills a command, half through each swap path


def arguments(command: str, src: Path, verifier: Path) -> list[str]:
    return {"save": ["convert", str(src), "--from", "speculators", "--verifier", str(verifier), "--verifier-name",
                     "local/verifier"],
            "upgrade": ["upgrade", str(src)],
            "export": ["export", str(src), "--for", "vllm"]}[command]


class Target:
    """The --out of a command under test: its old output, the new output a complete run writes, and the check
    after each kill."""

    def __init__(self, root: Path, command: str):
        self.out, self.old_source = root / "out", write_variant("eagle", root / "old")
        src, verifier = write_variant("eagle3", root / "src"), write_verifier(root / "verifier")
        self.argv = [*arguments(command, src, verifier), "--out", str(self.out), "--overwrite"]
        self.old = tree(self.old_source)
        code, err, _ = run(self.argv, root)
        assert code == 0, err
        self.new = tree(self.out)
        assert self.new and self.new != self.old
        self.reset()

    def reset(self) -> None:
        if tree(self.out) != self.old:
            shutil.rmtree(self.out, ignore_errors=True)
            shutil.copytree(self.old_source, self.out)

    def check(self) -> str:
        """Assert the crash guarantee, recover as the next run does, assert again, reset to the old output; the
        state seen right after the kill ('old', 'new', or 'aside': inside the overwrite window)."""
        state = tree(self.out)
        aside = [name for name in leftovers(self.out) if f".{OLD}-" in name]
        if state == {} and aside:
            assert len(aside) == 1 and tree(self.out.parent / aside[0]) == self.old
            seen = "aside"
        else:
            assert state in (self.old, self.new), sorted(state)
            seen = "old" if state == self.old else "new"
        recover(self.out)
        assert tree(self.out) in (self.old, self.new) and leftovers(self.out) == []
        self.reset()
        return seen


@pytest.mark.parametrize("command", ["save", "export", "upgrade"])
def test_a_kill_at_any_point_leaves_the_old_or_the_new_output_and_the_next_run_cleans_up(command, tmp_path):
    target = Target(tmp_path, command)
    seen = []
    for fallback in (False, True):
        landed = kill_series(target.argv, tmp_path, lambda: seen.append(target.check()), kills=KILLS // 2,
                             slow=0.03, fallback=fallback, seed=len(seen))
        assert len(landed) >= KILLS // 4, f"only {len(landed)} of {KILLS // 2} kills landed before the exit"
    assert "old" in seen and "new" in seen, seen


@pytest.mark.parametrize("command", ["save", "export", "upgrade"])
def test_a_kill_inside_the_overwrite_window_is_undone_by_a_rerun_of_the_same_command(command, tmp_path):
    target = Target(tmp_path, command)
    assert kill_held(target.argv, tmp_path, f".{OLD}-", fallback=True), "the old output was never moved aside"
    assert not target.out.exists() and len(leftovers(target.out)) == 2  # the old output aside, the new staged
    code, err, _ = run(target.argv, tmp_path)
    assert code == 0, err
    assert tree(target.out) == target.new and leftovers(target.out) == []
