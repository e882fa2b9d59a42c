"""datagen at scale: a killed datagen continues where it stopped (specfmt.train.answers) and its cache equals an
uninterrupted run's, answers never made twice; an online cache (specfmt.train.features) trains as a cached one."""

import json
from dataclasses import astuple, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from builders import V, datagen_setup
from specfmt.train import datagen, loop, recipes
from specfmt.train.answers import answers_dir
from specfmt.train.datagen import Cache, Caches, DataOptions, is_cache, write_cache
from specfmt.train.recipes.eagle3 import Eagle3Options


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny float32 verifier with a tokenizer and 30 prompts, 25 of them for training: 4 batches of 8."""
    return datagen_setup(tmp_path_factory.mktemp("datagen"))


def options(prompts: Path, temperature: float, max_new_tokens: int = 12) -> DataOptions:
    return DataOptions([f"distill:{prompts}"], seq_len=64, max_new_tokens=max_new_tokens, batch=8,
                       temperature=temperature, held_out=0.1)


class Killed(Exception):
    """What the simulated kill raises (a KeyboardInterrupt would stop pytest itself)."""


def counting(monkeypatch, fail_at: int | None = None) -> list[int]:
    """Count datagen's generate_batch calls; call number fail_at (from 1) raises Killed, as a kill would."""
    calls, real = [], datagen.generate_batch
    monkeypatch.setattr(datagen, "ROUND", 1)  # a call per stored batch (test_datagen_rounds.py: several)

    def generate(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == fail_at:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(datagen, "generate_batch", generate)
    return calls


def contents(cache: Path) -> tuple:
    index = json.loads((cache / "index.json").read_text())
    shards = [load_file(cache / s) for s in index["shards"]]
    return (cache / "documents.jsonl").read_text(), index, shards


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_a_datagen_killed_after_one_batch_resumes_to_the_cache_of_an_uninterrupted_run(tiny, monkeypatch,
                                                                                        temperature):
    root, verifier, text, prompts = tiny
    opts, out = options(prompts, temperature), root / f"resumed-{temperature}"
    calls = counting(monkeypatch, fail_at=2)
    with pytest.raises(Killed):
        write_cache(out, verifier, text, (1, 2), opts, lambda line: None)
    assert not out.exists() and len(list(answers_dir(out).iterdir())) == 1  # batch 1 kept, batch 2 lost
    calls = counting(monkeypatch)
    write_cache(out, verifier, text, (1, 2), opts, lambda line: None)
    resumed_calls = list(calls)
    assert not answers_dir(out).exists()  # gone once the cache is published
    calls.clear()
    whole = write_cache(root / f"whole-{temperature}", verifier, text, (1, 2), opts, lambda line: None)
    assert len(calls) >= 3 and resumed_calls == calls[1:]  # batch 1 is never answered again
    resumed, expected = contents(out), contents(whole)
    assert resumed[:2] == expected[:2]
    for a, b in zip(resumed[2], expected[2], strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_answers_kept_for_other_options_are_answered_again(tiny, monkeypatch):
    root, verifier, text, prompts = tiny
    out = root / "changed"
    counting(monkeypatch, fail_at=2)
    with pytest.raises(Killed):
        write_cache(out, verifier, text, (), options(prompts, 0.0, max_new_tokens=12), lambda line: None)
    calls = counting(monkeypatch)
    write_cache(out, verifier, text, (), options(prompts, 0.0, max_new_tokens=6), lambda line: None)
    assert len(calls) == 4 and calls[0] == 8, calls  # 25 training prompts: every batch answered again
    docs = [json.loads(line) for line in (out / "documents.jsonl").read_text().splitlines()]
    assert all(sum(d["supervised"]) <= 6 for d in docs)


def test_a_damaged_kept_batch_is_answered_again(tiny, monkeypatch):
    root, verifier, text, prompts = tiny
    out = root / "damaged"
    counting(monkeypatch, fail_at=2)
    with pytest.raises(Killed):
        write_cache(out, verifier, text, (), options(prompts, 0.0), lambda line: None)
    (kept,) = answers_dir(out).iterdir()
    (kept / "answers.json").write_text('{"format": "specfmt-answers/1", "answers": [[1')
    calls = counting(monkeypatch)
    write_cache(out, verifier, text, (), options(prompts, 0.0), lambda line: None)
    assert len(calls) == 4 and calls[0] == 8, calls  # 25 training prompts: the damaged batch 1 too


def test_an_old_format_cache_is_one_line_naming_the_fix(tiny):
    root = tiny[0]
    old = root / "old-cache"
    old.mkdir()
    (old / "index.json").write_text(json.dumps({"format": "specfmt-datagen/1"}))
    assert is_cache(old) and not is_cache(old, current=True)  # datagen may rewrite it; train does not read it
    with pytest.raises(ValueError, match=r"specfmt-datagen/1 cache, .* rerun `specfmt datagen` to rebuild it"):
        Cache(old)


def test_an_online_cache_holds_no_feature_shards_and_its_samples_equal_the_cached_ones(tiny):
    root, verifier, text, prompts = tiny
    cached = Cache(write_cache(root / "f-cached", verifier, text, (1, 2), options(prompts, 0.0), lambda line: None,
                               dtype=torch.float32))
    opts = replace(options(prompts, 0.0), features="online")
    online = Cache(write_cache(root / "f-online", verifier, text, (1, 2), opts, lambda line: None, torch.float32))
    assert online.index["shards"] == [] and not list(online.path.glob("*.safetensors"))
    assert len(online) == len(cached) >= 2 and online.check(verifier, (1, 2)) == []
    assert torch.equal(online.token_counts(V), cached.token_counts(V))
    for i in range(len(cached)):
        (a, argmax_a), (b, argmax_b) = online.sample(i, verifier), cached.sample(i, verifier)
        assert torch.equal(argmax_a, argmax_b)
        assert all(torch.equal(x, y) for x, y in zip(astuple(a), astuple(b), strict=True))


def test_training_on_online_features_equals_training_on_cached_ones_within_1e_5(tiny, tmp_path):
    """Same seed, float32, 4 optimizer steps of EAGLE-3: online features are computed by the same code on the
    same documents, so the weights agree to float32 rounding (the tolerance, 1e-5, covers a different order of
    summation that a future change could bring)."""
    root, verifier, text, prompts = tiny
    weights = []
    for features in ("cached", "online"):
        opts = replace(options(prompts, 0.0, max_new_tokens=20), features=features, seq_len=32)
        cache = Caches([write_cache(root / f"t-{features}", verifier, text, (1, 2), opts, lambda line: None,
                                    torch.float32)])
        train_opts = loop.TrainOptions(steps=2, batch=2, lr=3e-3, warmup=1, max_steps=4, save_every=100,
                                       val_prompts=0)
        recipe = recipes.RECIPES["eagle3"].make(verifier, "test/tiny", train_opts, Eagle3Options(64),
                                                cache.token_counts(V))
        run = loop.train(recipe, verifier, cache, train_opts, tmp_path / features, lambda record, total: None)
        weights.append({n: p.detach().clone() for n, p in run.params.items()})
    assert weights[0].keys() == weights[1].keys()
    moved = recipes.RECIPES["eagle3"].make(verifier, "test/tiny", train_opts, Eagle3Options(64),
                                           torch.ones(V, dtype=torch.long))
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], atol=1e-5, rtol=1e-5)
    assert any(not torch.equal(weights[0][n], moved.tensors[n].float()) for n in weights[0])  # it trained


def prompts_of(cache: Path) -> tuple[set, set]:
    """(training prompts, validation prompts) of a cache, as token id tuples."""
    docs = [json.loads(line) for line in (cache / "documents.jsonl").read_text().splitlines()]
    index = json.loads((cache / "index.json").read_text())
    return {tuple(d["tokens"][:d["prompt_len"]]) for d in docs}, {tuple(p) for p in index["val_prompts"]}


def test_a_cache_made_with_exclude_answers_the_prompts_the_other_left_and_none_it_holds(tiny):
    """More data from the same sources: --limit 10 of the 25 training prompts, then --exclude that cache; the two
    hold every prompt once, and the held-out ones stay the first cache's validation prompts only."""
    root, verifier, text, prompts = tiny
    first = write_cache(root / "x-first", verifier, text, (), replace(options(prompts, 0.0), limit=10),
                        lambda line: None)
    lines = []
    second = write_cache(root / "x-second", verifier, text, (), replace(options(prompts, 0.0), exclude=[str(first)]),
                         lines.append)
    (train_1, val_1), (train_2, val_2) = prompts_of(first), prompts_of(second)
    assert len(train_1) == 10 and len(val_1) == 5 and len(train_2) == 15 and val_2 == set()
    assert not train_2 & (train_1 | val_1)
    assert any("15 prompts left out, the caches" in line for line in lines), lines
    everything = write_cache(root / "x-all", verifier, text, (), options(prompts, 0.0), lambda line: None)
    assert prompts_of(everything) == (train_1 | train_2, val_1)


def test_a_cache_recorded_before_a_data_option_existed_counts_as_made_with_its_default(tiny):
    from dataclasses import asdict

    from specfmt.train.commands import recorded

    opts = options(tiny[3], 0.0)
    older = {k: v for k, v in asdict(opts).items() if k != "exclude"}
    assert recorded(older) == asdict(opts)
    assert recorded(older | {"limit": 3}) != asdict(opts)


def test_a_drafts_provenance_names_an_excluded_cache_under_home_as_a_command_would():
    from specfmt.train.loop import portable_options

    home = str(Path.home())
    assert portable_options({"limit": 3, "exclude": [f"{home}/data/mix", "/srv/other"]}) == {
        "limit": 3, "exclude": ["~/data/mix", "/srv/other"]}
    assert portable_options({"limit": 3}) == {"limit": 3}  # a cache made before --exclude existed
