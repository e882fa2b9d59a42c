"""specfmt datagen and specfmt train at the CLI boundary: every common mistake and hostile input is one line on
stderr and an exit status, never a traceback, and never costs the user data (issue 20, sections 2 and 4). Cases
that could hang (a FIFO) or need a signal run in a subprocess with a bounded timeout; the rest call main()."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from builders import fill_disk, sigint_default, write_prompt_ids, write_variant, write_verifier
from specfmt.cli import main
from specfmt.text import Text
from specfmt.train import loop
from specfmt.train.datagen import DataOptions, write_cache
from specfmt.verifier import Verifier

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(root, verifier dir, prompts file, eagle3 cache) of a tiny verifier with a tokenizer."""
    root = tmp_path_factory.mktemp("train-errors")
    verifier_dir = write_verifier(root / "verifier", tokenizer=True, scale=5)
    prompts = write_prompt_ids(root / "prompts.jsonl", [6] * 24)
    opts = DataOptions([f"distill:{prompts}"], seq_len=32, max_new_tokens=6, batch=8, held_out=0.1)
    cache = write_cache(root / "cache", Verifier.from_pretrained(verifier_dir), Text.from_verifier(verifier_dir),
                        (2, 3), opts, lambda line: None)
    return root, verifier_dir, prompts, cache


def datagen_args(tiny, out, *extra: str, data: str | None = None) -> list[str]:
    root, verifier_dir, prompts, _ = tiny
    return ["datagen", "--verifier", str(verifier_dir), "--data", data or f"distill:{prompts}", "--out", str(out),
            "--seq-len", "32", "--max-new-tokens", "4", "--gen-batch", "8", "--threads", "1", *extra]


def train_args(tiny, out, *extra: str, data: str | None = None) -> list[str]:
    root, verifier_dir, prompts, cache = tiny
    return ["train", "eagle3", "--verifier", str(verifier_dir), "--data", data or str(cache), "--out", str(out),
            "--verifier-name", "test/tiny", "--batch", "2", "--warmup", "1", "--threads", "1",
            "--draft-vocab-size", "64", "--val-prompts", "1", "--val-tokens", "4", *extra]


def one_line(capsys, *words: str, progress: bool = False) -> str:
    """The single line on stderr (after the progress lines of a run that trained), which holds every word."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines()
             if not (progress and line.startswith(("step ", "epoch ", "resuming", "distill ", "features: ")))]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def run_cli(args: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "specfmt.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


NUMERIC = [("train", "--seq-len", "0"), ("train", "--threads", "-1"), ("train", "--draft-vocab-size", "0"),
           ("train", "--save-every", "0"), ("train", "--epochs", "0"), ("train", "--lr", "nan"),
           ("train", "--lr", "-1"), ("train", "--step-decay", "inf"), ("train", "--k", "0"),
           ("train", "--batch", "0"), ("train", "--max-steps", "-1"), ("train", "--held-out", "1.5"),
           ("datagen", "--limit", "-1"), ("datagen", "--gen-batch", "0"), ("datagen", "--max-new-tokens", "0"),
           ("datagen", "--temperature", "nan"), ("datagen", "--seq-len", "-5")]


@pytest.mark.parametrize("command,flag,value", NUMERIC)
def test_a_numeric_option_out_of_bounds_is_one_line_naming_the_flag(tiny, tmp_path, capsys, command, flag, value):
    build = train_args if command == "train" else datagen_args
    assert main(build(tiny, tmp_path / "out", flag, value)) == 2
    one_line(capsys, flag, value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.work").exists()


def test_datagen_refuses_an_existing_out_that_is_not_a_cache_and_keeps_it(tiny, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(datagen_args(tiny, out)) == 2
    one_line(capsys, str(out), "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"


def test_datagen_never_writes_over_the_directory_that_holds_its_input(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps({"text": "hello world, hello"}) + "\n")
    assert main(datagen_args(tiny, data, "--overwrite", data=str(data / "train.jsonl"))) == 2
    one_line(capsys, "choose an --out outside")
    assert (data / "train.jsonl").is_file() and sorted(p.name for p in data.iterdir()) == ["train.jsonl"]


@pytest.mark.parametrize("where", [".", "parent"])
def test_datagen_and_train_never_write_over_the_working_directory_or_a_parent(tiny, tmp_path, capsys,
                                                                             monkeypatch, where):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    out = "." if where == "." else str(tmp_path / "a")
    for args in (datagen_args(tiny, out, "--overwrite"), train_args(tiny, out, "--overwrite")):
        assert main(args) == 2
        one_line(capsys, "working directory")
        assert inner.is_dir()


def test_datagen_rewrites_its_own_cache_and_replaces_another_directory_only_with_overwrite(tiny, tmp_path, capsys):
    out = tmp_path / "cache"
    assert main(datagen_args(tiny, out)) == 0
    assert main(datagen_args(tiny, out, "--limit", "5")) == 0  # a cache it wrote: rewritten without --overwrite
    assert json.loads((out / "index.json").read_text())["options"]["limit"] == 5
    other = tmp_path / "other"
    other.mkdir()
    (other / "old.txt").write_text("old")
    assert main(datagen_args(tiny, other, "--overwrite")) == 0
    assert (other / "index.json").is_file() and not (other / "old.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_train_refuses_an_out_that_is_not_a_checkpoint_it_wrote(tiny, tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_text("meow")
    assert main(train_args(tiny, out, "--overwrite")) == 2
    one_line(capsys, "not a checkpoint")
    assert (out / "cat.jpg").read_text() == "meow"
    draft = write_variant("eagle3", tmp_path / "someone-elses-draft")
    assert main(train_args(tiny, draft)) == 2
    one_line(capsys, "--overwrite")
    assert (draft / "config.json").is_file() and not (tmp_path / "someone-elses-draft.work").exists()


def test_train_never_writes_over_its_verifier_or_a_directory_holding_it(tiny, tmp_path, capsys):
    root, verifier_dir, _, _ = tiny
    for out in (verifier_dir, root):
        assert main(train_args(tiny, out, "--overwrite")) == 2
        one_line(capsys, "choose an --out outside")
    assert (verifier_dir / "config.json").is_file()


def test_a_rerun_of_train_replaces_the_draft_it_wrote(tiny, tmp_path, capsys):
    out = tmp_path / "draft"
    assert main(train_args(tiny, out, "--max-steps", "1")) == 0
    assert main(train_args(tiny, out, "--max-steps", "1", "--restart")) == 0
    assert (out / "config.json").is_file()


def broken_cache(tiny, tmp_path: Path, shard: str) -> Path:
    """A copy of the cache whose index names `shard`."""
    import shutil

    cache = Path(shutil.copytree(tiny[3], tmp_path / "cache"))
    index = json.loads((cache / "index.json").read_text())
    index["shards"] = [shard]
    (cache / "index.json").write_text(json.dumps(index))
    return cache


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/../../outside.safetensors"])
def test_train_refuses_a_cache_index_naming_a_shard_outside_the_cache(tiny, tmp_path, capsys, shard):
    import shutil

    shutil.copy(tiny[3] / "features-00000.safetensors", tmp_path / "outside.safetensors")
    cache = broken_cache(tiny, tmp_path, shard)
    assert main(train_args(tiny, tmp_path / "out", data=str(cache))) == 2
    one_line(capsys, "index.path", "/shards/0")


def test_a_fifo_in_place_of_a_cache_shard_or_a_data_file_is_refused_not_waited_on(tiny, tmp_path):
    cache = broken_cache(tiny, tmp_path, "features-00000.safetensors")
    (cache / "features-00000.safetensors").unlink()
    os.mkfifo(cache / "features-00000.safetensors")
    os.mkfifo(tmp_path / "fifo.jsonl")
    for args in (train_args(tiny, tmp_path / "out", data=str(cache)),
                 datagen_args(tiny, tmp_path / "out2", data=str(tmp_path / "fifo.jsonl")),
                 datagen_args(tiny, tmp_path / "out3", data=f"distill:{tmp_path / 'fifo.jsonl'}")):
        proc = run_cli(args, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "FIFO" in proc.stderr, proc.stderr


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_cache_shard_is_one_line_naming_it(tiny, tmp_path, capsys, damage):
    cache = broken_cache(tiny, tmp_path, "features-00000.safetensors")
    shard = cache / "features-00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:100] if damage == "truncated" else b"\xff" * 64)
    assert main(train_args(tiny, tmp_path / "out", data=str(cache))) == 2
    one_line(capsys, "features-00000.safetensors", "header")


@pytest.mark.parametrize("key,value,words", [("samples", 1000, "index.json#/samples"),
                                             ("val_prompts", [[100000]], "index.json#/val_prompts"),
                                             ("val_prompts", [[]], "index.json#/val_prompts"),
                                             ("shards", "features-00000.safetensors", "index.json#/shards"),
                                             ("samples", None, "index.json#/samples")])
def test_a_cache_index_that_contradicts_its_shards_or_the_verifier_is_one_line(tiny, tmp_path, capsys, key, value,
                                                                              words):
    cache = broken_cache(tiny, tmp_path, "features-00000.safetensors")
    index = json.loads((cache / "index.json").read_text())
    index[key] = value
    (cache / "index.json").write_text(json.dumps(index))
    assert main(train_args(tiny, tmp_path / "out", data=str(cache))) == 2
    one_line(capsys, words)


BAD_RECORDS = [("", "5"), ("", "null"), ("", '{"text": 5}'), ("", "not json"), ("", '{"messages": "hi"}'),
               ("", '{"nothing": 1}'), ("distill:", '{"prompt_ids": [100000]}'), ("distill:", '{"prompt_ids": []}'),
               ("distill:", '{"prompt_ids": 5}'), ("distill:", '{"prompt_ids": [true]}'), ("distill:", "[1, 2]"),
               ("distill:", '{"prompt": 7}')]


@pytest.mark.parametrize("prefix,line", BAD_RECORDS)
def test_a_bad_data_record_is_one_line_naming_its_file_and_line(tiny, tmp_path, capsys, prefix, line):
    data = tmp_path / "data.jsonl"
    good = {"text": "hello there"} if not prefix else {"prompt_ids": [1, 2, 3]}
    data.write_text(json.dumps(good) + "\n\n" + line + "\n")
    assert main(datagen_args(tiny, tmp_path / "out", data=prefix + str(data))) == 2
    one_line(capsys, f"{data}:3")
    assert not (tmp_path / "out").exists()


def test_a_diverged_draft_is_refused_naming_a_tensor_and_nothing_is_written(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loop, "learning_rate", lambda opts, step, total: float("nan"))
    out = tmp_path / "draft"
    assert main(train_args(tiny, out, "--max-steps", "2")) == 2
    line = one_line(capsys, "NaN or infinite weights in", "not written", progress=True)
    assert ".weight" in line and not out.exists()


def test_a_changed_option_on_resume_is_named_with_both_values(tiny, tmp_path, capsys):
    out = tmp_path / "draft"
    assert main(train_args(tiny, out, "--max-steps", "2", "--save-every", "1")) == 0
    capsys.readouterr()
    assert main(train_args(tiny, out, "--max-steps", "3", "--save-every", "1", "--lr", "0.002")) == 2
    one_line(capsys, "--max-steps 2 (now 3)", "--lr 0.001 (now 0.002)", "--restart", progress=True)


def test_a_second_train_into_the_same_out_stops_naming_the_first_ones_pid(tiny, tmp_path, capsys):
    out, work = tmp_path / "draft", tmp_path / "draft.work"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from specfmt.train import state; "
                               "state.lock(__import__('pathlib').Path(sys.argv[1])); print('held', flush=True); "
                               "time.sleep(120)", str(work)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(train_args(tiny, out, "--max-steps", "1")) == 2
        one_line(capsys, f"pid {holder.pid}", str(work))
    finally:
        holder.kill()
        holder.wait()
    assert main(train_args(tiny, out, "--max-steps", "1")) == 0  # the lock went with its holder


def test_a_rank_other_than_0_prints_nothing(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert main(train_args(tiny, tmp_path / "out", "--seq-len", "0")) == 2
    assert capsys.readouterr().err == ""


def test_ctrl_c_says_how_to_resume_and_the_rerun_says_where_it_resumes(tiny, tmp_path):
    args = train_args(tiny, tmp_path / "draft", "--epochs", "50", "--max-steps", "30", "--save-every", "1",
                      "--val-prompts", "0")
    proc = subprocess.Popen([sys.executable, "-m", "specfmt.cli", *args], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=sigint_default)
    for line in proc.stderr:
        if line.startswith("step 3/"):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in rest and rest.strip().splitlines()[-1].startswith("specfmt train: interrupted"), rest
    step = json.loads((tmp_path / "draft.work" / "checkpoint" / "state.json").read_text())["step"]
    assert step >= 2 and f"resume from step {step}" in rest and "with: specfmt train eagle3 --verifier" in rest
    again = run_cli(args)
    assert again.returncode == 0 and f"resuming from step {step}" in again.stderr, again.stderr


def test_ctrl_c_in_datagen_is_one_line_and_leaves_no_output(tiny, tmp_path):
    out = tmp_path / "cache"
    args = datagen_args(tiny, out, "--gen-batch", "1", "--max-new-tokens", "24")
    proc = subprocess.Popen([sys.executable, "-m", "specfmt.cli", *args], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=sigint_default)
    for line in proc.stderr:
        if line.startswith("distill "):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130 and "Traceback" not in rest, rest
    kept = tmp_path / "cache.answers"  # the first prompt's answer, published before its progress line
    assert rest.strip().splitlines()[-1] == (f"specfmt datagen: interrupted; {out} is as it was; the answers made "
                                             f"so far wait in {kept}: the same command continues from them")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.answers"]


def test_a_full_disk_stops_datagen_and_train_in_one_line_keeping_the_saved_state(tiny, small_disk, capsys):
    out = small_disk / "draft"
    assert main(train_args(tiny, out, "--max-steps", "4", "--save-every", "2", "--epochs", "3")) == 0
    state_before = (small_disk / "draft.work" / "checkpoint" / "state.json").read_text()
    fill_disk(small_disk, 16 * 1024)
    capsys.readouterr()
    assert main(datagen_args(tiny, small_disk / "cache")) == 2
    one_line(capsys, "no space left", str(small_disk), progress=True)
    assert main(train_args(tiny, out, "--max-steps", "4", "--save-every", "2", "--epochs", "3")) == 2
    one_line(capsys, "no space left", str(small_disk), progress=True)
    names = sorted(p.name for p in small_disk.iterdir())
    assert names in (["draft", "draft.work", "filler"], ["cache.answers", "draft", "draft.work", "filler"]), names
    kept = small_disk / "cache.answers"  # the answers finished before the disk filled, each batch whole
    assert all(sorted(b.iterdir()) == [b / "answers.json"] for b in (kept.iterdir() if kept.exists() else []))
    assert sorted(p.name for p in (small_disk / "draft.work").iterdir() if p.name.startswith(".")) == []
    assert (small_disk / "draft.work" / "checkpoint" / "state.json").read_text() == state_before
