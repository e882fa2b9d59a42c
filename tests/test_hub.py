"""specfmt.hub and hub ids on the command line: `org/draft[@revision]` found in a local Hugging Face cache (a fake
one under tmp_path, laid out as huggingface_hub writes it), never downloaded."""

import json
import shutil
from pathlib import Path

import pytest

from builders import write_variant, write_verifier
from specfmt import hub
from specfmt.cli import main

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def hf_home(tmp_path, monkeypatch) -> Path:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path / "hf"


def cache(hf_home: Path, repo: str, source: Path | None = None, ref: str = "main", commit: str = COMMIT) -> Path:
    """`source`'s files cached as `repo` at `commit`, which refs/`ref` names: blobs with snapshot symlinks, as
    huggingface_hub stores them. Returns the snapshot directory."""
    models = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = models / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (models / "blobs").mkdir(exist_ok=True)
    for file in sorted(source.iterdir()) if source else []:
        shutil.copy(file, models / "blobs" / f"{commit[:8]}-{file.name}")  # a real blob is named by its hash
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", f"{commit[:8]}-{file.name}"))
    (models / "refs").mkdir(exist_ok=True)
    (models / "refs" / ref).write_text(commit)
    return snapshot


def test_a_hub_id_is_owner_slash_name_with_an_optional_revision():
    assert hub.parse("org/draft") == ("org/draft", "main")
    assert hub.parse("RedHatAI/Llama-3.1-8B-Instruct-speculator.eagle3@v2") == (
        "RedHatAI/Llama-3.1-8B-Instruct-speculator.eagle3", "v2")
    assert hub.parse(f"org/draft@{COMMIT}") == ("org/draft", COMMIT)


@pytest.mark.parametrize("text", ["draft", "./org/draft", "/abs/draft", "org/draft/extra", "org//draft",
                                  "org/draft@", "org/draft@../../etc", "org/dra ft", "org/draft\n"])
def test_paths_and_malformed_ids_are_not_hub_ids(text):
    assert hub.parse(text) is None


def test_the_cache_is_hf_hub_cache_else_hf_home_hub_else_the_user_cache(tmp_path, monkeypatch):
    assert hub.cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub.cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.cache_dir() == tmp_path / "home" / ".cache" / "huggingface" / "hub"


def test_a_cached_id_resolves_to_the_snapshot_its_ref_names(hf_home):
    snapshot = cache(hf_home, "org/draft")
    cache(hf_home, "org/draft", ref="v2", commit=OTHER)
    assert hub.snapshot("org/draft") == snapshot
    assert hub.snapshot("org/draft@v2") == snapshot.parent / OTHER
    assert hub.snapshot(f"org/draft@{COMMIT}") == snapshot  # a commit hash names its snapshot directly


def test_an_id_or_revision_missing_from_the_cache_resolves_to_nothing(hf_home):
    cache(hf_home, "org/draft")
    assert hub.snapshot("org/other") is None
    assert hub.snapshot("org/draft@v9") is None
    shutil.rmtree(hf_home / "hub" / "models--org--draft" / "snapshots" / COMMIT)  # a ref to a deleted snapshot
    assert hub.snapshot("org/draft") is None


def test_validate_reads_a_cached_hub_id(hf_home, tmp_path, capsys):
    snapshot = cache(hf_home, "org/draft", write_variant("eagle3", tmp_path / "draft"))
    assert main(["validate", "org/draft", "--profile", "strict"]) == 0
    assert capsys.readouterr().out == f"{snapshot}: valid under strict (0 errors, 0 warnings)\n"


def test_inspect_reads_a_cached_hub_id_at_a_revision(hf_home, tmp_path, capsys):
    cache(hf_home, "org/draft", write_variant("eagle3", tmp_path / "draft"), ref="v2")
    assert main(["inspect", "org/draft@v2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["algorithm"] == "eagle3"


def test_generate_reads_a_cached_verifier_and_draft(hf_home, tmp_path, capsys):
    cache(hf_home, "org/verifier", write_verifier(tmp_path / "verifier"), commit=OTHER)
    cache(hf_home, "org/draft", write_variant("eagle3", tmp_path / "draft"))
    code = main(["generate", "--verifier", "org/verifier", "--draft", "org/draft", "--prompt-ids", "1", "2",
                 "--max-new-tokens", "4", "--format", "json"])
    assert code == 0 and len(json.loads(capsys.readouterr().out)["tokens"]) == 4


def test_an_id_not_in_the_cache_is_one_line_naming_the_cache_and_the_download_command(hf_home, capsys):
    assert main(["validate", "org/draft@v2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("specfmt validate: org/draft@v2: no such directory, and hub id org/draft (revision v2) "
                          f"is not in the Hugging Face cache {hf_home / 'hub'}; specfmt never downloads")
    assert "`huggingface-cli download org/draft --revision v2`" in err


def test_an_existing_local_directory_wins_over_a_hub_id(hf_home, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_variant("eagle3", tmp_path / "org" / "draft")
    cache(hf_home, "org/draft")  # an empty snapshot, which would be invalid
    assert main(["validate", "org/draft"]) == 0
    assert capsys.readouterr().out.startswith("org/draft: valid")
