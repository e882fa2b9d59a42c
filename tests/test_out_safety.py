"""--out safety of the writing commands (issue 20, section 4): convert (all seven --from formats), upgrade and
export never write at, inside or above their source, never at the working directory or a parent of it, refuse a
file or a foreign directory as --out in one line, and leave the old output whole when the disk fills."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builders import fill_disk, write_variant, write_verifier
from killing import leftovers, tree
from out_sources import SOURCES, source
from specfmt.cli import main

RELATIONS = {"the source": lambda src: src, "inside the source": lambda src: src / "v1",
             "a parent of the source": lambda src: src.parent}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    root = tmp_path_factory.mktemp("sources")
    return {fmt: source(fmt, root / fmt) for fmt in SOURCES}


@pytest.fixture(scope="module")
def strict(tmp_path_factory) -> tuple[Path, Path]:
    """A strict checkpoint (what upgrade and export read) beside its verifier."""
    root = tmp_path_factory.mktemp("strict")
    return write_variant("eagle3", root / "src"), write_verifier(root / "verifier")


def commands(strict: tuple[Path, Path]) -> dict[str, list[str]]:
    src, verifier = strict
    return {"upgrade": ["upgrade", str(src)], "export": ["export", str(src), "--for", "vllm"],
            "convert": ["convert", str(src), "--from", "speculators", "--verifier", str(verifier)]}


def one_line_refusal(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    return err


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("fmt", SOURCES)
def test_convert_with_overwrite_never_writes_at_inside_or_above_its_source(fmt, relation, sources, capsys):
    src, args = sources[fmt]
    before = tree(src.parent)
    out = RELATIONS[relation](src)
    assert main(["convert", str(src), *args, "--out", str(out), "--overwrite"]) == 2
    one_line_refusal(capsys, f"is {relation}", str(src))
    assert tree(src.parent) == before and leftovers(src) == []


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("command", ["upgrade", "export"])
def test_upgrade_and_export_with_overwrite_never_write_at_inside_or_above_their_source(command, relation, strict,
                                                                                     capsys):
    src = strict[0]
    before = tree(src.parent)
    out = RELATIONS[relation](src)
    assert main([*commands(strict)[command], "--out", str(out), "--overwrite"]) == 2
    one_line_refusal(capsys, f"is {relation}", str(src))
    assert tree(src.parent) == before


@pytest.mark.parametrize("out", ["", "."])
@pytest.mark.parametrize("command", ["upgrade", "export", "convert"])
def test_an_out_that_is_the_working_directory_is_refused_even_with_overwrite(command, out, strict, tmp_path,
                                                                              monkeypatch, capsys):
    work = tmp_path / "work"
    (work / "notes").mkdir(parents=True)
    (work / "notes" / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    assert main([*commands(strict)[command], "--out", out, "--overwrite"]) == 2
    one_line_refusal(capsys, "working directory")
    assert tree(work) == {"notes/keep.txt": b"mine"}


@pytest.mark.parametrize("command", ["upgrade", "export", "convert"])
def test_a_parent_of_the_working_directory_is_refused_even_with_overwrite(command, strict, tmp_path, monkeypatch,
                                                                         capsys):
    work = tmp_path / "a" / "work"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    assert main([*commands(strict)[command], "--out", "..", "--overwrite"]) == 2
    one_line_refusal(capsys, "parent of the working directory")
    assert (work / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["upgrade", "export", "convert"])
def test_a_file_at_out_is_refused_in_one_line_and_replaced_with_overwrite(command, strict, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("a file")
    assert main([*commands(strict)[command], "--out", str(out)]) == 2
    one_line_refusal(capsys, str(out), "--overwrite")
    assert out.read_text() == "a file"
    assert main([*commands(strict)[command], "--out", str(out), "--overwrite"]) == 0
    assert (out / "config.json").is_file() and leftovers(out) == []


def test_convert_with_overwrite_refuses_a_directory_that_is_not_a_checkpoint(strict, tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"meow")
    assert main([*commands(strict)["convert"], "--out", str(out), "--overwrite"]) == 2
    one_line_refusal(capsys, "not a checkpoint", str(out))
    assert tree(out) == {"cat.jpg": b"meow"}


@pytest.mark.parametrize("command", ["convert", "upgrade", "export"])
@pytest.mark.parametrize("relation", RELATIONS)
def test_overwrite_never_writes_at_inside_or_above_the_verifier(command, relation, strict, capsys):
    verifier = strict[1]
    before = tree(verifier.parent)
    out = RELATIONS[relation](verifier)
    argv = [*commands(strict)[command], *([] if command == "convert" else ["--verifier", str(verifier)])]
    assert main([*argv, "--out", str(out), "--overwrite"]) == 2
    one_line_refusal(capsys, "is " + relation.replace("the source", "the "), "choose an --out outside")
    assert tree(verifier.parent) == before


@pytest.mark.parametrize("command", ["upgrade", "export", "convert"])
def test_a_full_disk_is_one_line_leaves_no_staging_and_keeps_the_old_output(command, strict, small_disk, capsys):
    out = small_disk / "out"
    shutil.copytree(strict[0], out)
    old = tree(out)
    fill_disk(small_disk, 32 * 1024)  # the new output is about 100 kB
    assert main([*commands(strict)[command], "--out", str(out), "--overwrite"]) == 2
    one_line_refusal(capsys, "no space left", str(small_disk))
    assert tree(out) == old and leftovers(out) == []


def test_save_on_a_full_disk_raises_disk_full_leaves_no_staging_and_keeps_the_old_output(small_disk):
    from builders import config_of, tensors_for
    from specfmt import save
    from specfmt.publish import DiskFull

    out = small_disk / "out"
    save(config_of("eagle"), tensors_for(config_of("eagle")), out)
    old = tree(out)
    fill_disk(small_disk, 16 * 1024)
    config = config_of("eagle3")
    with pytest.raises(DiskFull, match="no space left"):
        save(config, tensors_for(config), out, overwrite=True)
    assert tree(out) == old and leftovers(out) == []
