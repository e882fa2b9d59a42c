"""specfmt.publish: the one helper that writes a directory (staged beside, fsynced, swapped in, the usual mode,
cleaned up on failure, recovered after a kill) and the --out rules of check_out."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from killing import leftovers, tree
from specfmt import publish as publishing
from specfmt.publish import UnsafeOut, check_out, looks_like_checkpoint, publish


def writes(files: dict[str, str]):
    def write(staging: Path) -> None:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)
    return write


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


@pytest.fixture(params=["exchange", "move aside"])
def swap(request, monkeypatch):
    """Both ways of replacing an existing output: renameat2's atomic exchange, and the fallback."""
    if request.param == "move aside":
        monkeypatch.setattr(publishing, "_exchange", lambda a, b: False)
    return request.param


def test_a_published_directory_has_mode_755_and_its_files_644_less_the_umask(tmp_path, umask_027):
    out = publish(tmp_path / "out", writes({"config.json": "{}", "sub/model.safetensors": "x"}))
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes == {".": 0o750, "config.json": 0o640, "sub": 0o750, "sub/model.safetensors": 0o640}


def test_publish_replaces_an_existing_output_only_with_overwrite_and_leaves_nothing_beside(tmp_path, swap):
    out = publish(tmp_path / "out", writes({"old": "1"}))
    with pytest.raises(UnsafeOut, match="pass --overwrite"):
        publish(out, writes({"new": "2"}))
    publish(out, writes({"new": "2"}), overwrite=True)
    assert tree(out) == {"new": b"2"} and os.listdir(tmp_path) == ["out"]


def test_publish_replaces_a_file_with_overwrite(tmp_path, swap):
    (tmp_path / "out").write_text("a file")
    publish(tmp_path / "out", writes({"new": "2"}), overwrite=True)
    assert tree(tmp_path / "out") == {"new": b"2"} and os.listdir(tmp_path) == ["out"]


def test_an_exception_in_write_removes_the_staging_directory_and_keeps_the_old_output(tmp_path):
    out = publish(tmp_path / "out", writes({"old": "1"}))

    def failing(staging: Path) -> None:
        (staging / "half").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        publish(out, failing, overwrite=True)
    assert tree(out) == {"old": b"1"} and os.listdir(tmp_path) == ["out"]


def test_a_staging_directory_of_a_dead_process_is_removed_by_the_next_run(tmp_path):
    stale = tmp_path / f".out.specfmt-staging-{dead_pid()}-abcd"
    stale.mkdir()
    (stale / "half").write_text("half")
    publish(tmp_path / "out", writes({"new": "2"}))
    assert os.listdir(tmp_path) == ["out"]


def test_a_staging_directory_of_a_live_process_and_other_names_are_left_alone(tmp_path):
    live = tmp_path / f".out.specfmt-staging-{os.getppid()}-abcd"
    others = [tmp_path / ".out.specfmt-staging-x", tmp_path / ".other.specfmt-staging-1-abcd", tmp_path / "out.bak"]
    for path in [live, *others]:
        path.mkdir()
    publish(tmp_path / "out", writes({"new": "2"}))
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in [live, *others, tmp_path / "out"])


def test_an_old_output_moved_aside_by_a_killed_run_is_restored_before_anything_else(tmp_path):
    pid = dead_pid()
    aside = tmp_path / f".out.specfmt-old-{pid}-abcd"
    aside.mkdir()
    (aside / "old").write_text("1")
    (tmp_path / f".out.specfmt-staging-{pid}-efgh").mkdir()  # the new one, complete or not
    with pytest.raises(UnsafeOut, match="exists"):  # restored, so it is an existing --out again
        publish(tmp_path / "out", writes({"new": "2"}))
    assert tree(tmp_path / "out") == {"old": b"1"} and os.listdir(tmp_path) == ["out"]


def test_an_old_output_left_beside_a_complete_new_one_is_removed(tmp_path):
    publish(tmp_path / "out", writes({"new": "2"}))
    aside = tmp_path / f".out.specfmt-old-{dead_pid()}-abcd"
    aside.mkdir()
    publish(tmp_path / "out", writes({"newer": "3"}), overwrite=True)
    assert tree(tmp_path / "out") == {"newer": b"3"} and os.listdir(tmp_path) == ["out"]


def test_the_swap_falls_back_to_moving_aside_where_renameat2_cannot_exchange(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(publishing, "_exchange", lambda a, b: calls.append((a, b)) or False)
    publish(tmp_path / "out", writes({"old": "1"}))
    publish(tmp_path / "out", writes({"new": "2"}), overwrite=True)
    assert len(calls) == 1 and tree(tmp_path / "out") == {"new": b"2"} and leftovers(tmp_path / "out") == []


def test_renameat2_exchanges_two_directories_here(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "in_a").write_text("")
    if not publishing._exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this kernel or filesystem has no RENAME_EXCHANGE; publish moves the old output aside")
    assert os.listdir(tmp_path / "b") == ["in_a"] and os.listdir(tmp_path / "a") == []


@pytest.mark.parametrize("out, why", [("", "working directory"), (".", "working directory"),
                                      ("..", "parent of the working directory"), ("/", "parent of the working"),
                                      ("src", "is the source"), ("src/v1", "is inside the source"),
                                      ("./src/../src", "is the source"), ("link", "is the source"),
                                      ("link/v1", "is inside the source")])
def test_check_out_refuses_the_working_directory_the_source_and_what_holds_or_is_inside_either(
        out, why, tmp_path, monkeypatch):
    (tmp_path / "work" / "src").mkdir(parents=True)
    (tmp_path / "work" / "link").symlink_to(tmp_path / "work" / "src")
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(UnsafeOut, match=why):
        check_out(out, protect=["src"], overwrite=True)


def test_check_out_refuses_a_parent_of_the_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeOut, match="is a parent of the source"):
        check_out(tmp_path / "a", protect=[tmp_path / "a" / "b" / "src"], overwrite=True)


def test_check_out_accepts_a_sibling_of_the_source_and_returns_it_absolute(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    assert check_out("src-v1", protect=["src"]) == tmp_path.resolve() / "src-v1"


def test_an_existing_file_needs_overwrite_and_a_foreign_directory_is_refused_even_with_it(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("x")
    with pytest.raises(UnsafeOut, match="is a file; pass --overwrite"):
        check_out(tmp_path / "file")
    assert check_out(tmp_path / "file", overwrite=True, kind_check=looks_like_checkpoint) == tmp_path / "file"
    with pytest.raises(UnsafeOut, match="not a checkpoint; refusing to replace it even with --overwrite"):
        check_out(tmp_path / "photos", overwrite=True, kind_check=looks_like_checkpoint)


def test_every_refusal_is_one_line_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafeOut) as refused:
        check_out("out")
    assert "\n" not in str(refused.value) and str(tmp_path.resolve() / "out") in str(refused.value)


def test_a_full_disk_while_writing_is_disk_full_in_one_line_with_nothing_left(tmp_path):
    from specfmt.publish import DiskFull

    def full(staging: Path) -> None:
        (staging / "half").write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(DiskFull) as refused:
        publish(tmp_path / "out", full)
    assert "no space left" in str(refused.value) and str(tmp_path) in str(refused.value)
    assert "\n" not in str(refused.value) and os.listdir(tmp_path) == []
