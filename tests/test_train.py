"""specfmt train: the runtime's own draft modules in train mode. Their train forward equals the runtime's
forward; a few steps lower the loss and give a strict checkpoint the runtime runs; a stopped run resumes to
the same weights; two gloo ranks compute what one process computes on the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from builders import V, config_of, tensors_for, verifier_for, write_prompt_ids, write_verifier
from specfmt import nn, validate
from specfmt.cli import main
from specfmt.defaults import resolve
from specfmt.proposal import Context, Picker, Sample
from specfmt.runtime import build_draft, load_draft
from specfmt.text import Text
from specfmt.train.datagen import Cache, DataOptions, write_cache
from specfmt.verifier import Verifier

ALGORITHMS = ["eagle3", "medusa", "mlp_speculator"]
TOKENS = [3, 17, 5, 90, 41, 41, 7, 120, 64, 9, 33, 2, 58, 77]


class ForcedPicker(Picker):
    """Records the logits of each proposal row and picks the true next token (teacher forcing)."""

    def __init__(self, truth: list[int]):
        super().__init__()
        self.truth, self.logits = truth, []

    def __call__(self, logits):
        self.logits.append(logits.detach().clone())
        return self.truth[len(self.logits) - 1], None


def sample_of(verifier: Verifier, aux_ids: tuple[int, ...]) -> Sample:
    tokens = torch.tensor(TOKENS)
    verifier.truncate(0)
    out = verifier.forward(tokens, aux_ids)
    t = tokens.numel()
    return Sample(tokens, torch.ones(t, dtype=torch.bool), torch.zeros(t, dtype=torch.long), torch.arange(t),
                  out.aux.clone(), out.last.clone(), out.normed.clone())


@pytest.mark.parametrize("variant", ["eagle3_qwen3_2l_fullvocab_normfc", "eagle3_llama_2l_residual_before_norm",
                                     "medusa", "mlp_speculator"])
def test_the_train_forward_equals_the_runtime_forward_on_the_same_weights(variant):
    verifier = verifier_for(0)
    resolved = resolve(config_of(variant))
    if "draft_vocab_size" in resolved:
        resolved["draft_vocab_size"] = V  # the forced tokens must be draft ids: the full vocabulary
    tensors = {n: t * 10 if t.is_floating_point() else t for n, t in tensors_for(resolved, 1).items()
               if n not in ("d2t", "t2d")}
    draft = build_draft(resolved, tensors, verifier)
    sample = sample_of(verifier, draft.aux_ids)
    trained = draft.train_forward(sample, 3)
    for t in (0, 4, 9):  # anchor: the verifier has run positions 0..t; x[t+1] is pending
        picker = ForcedPicker(TOKENS[t + 2:t + 5])
        draft.reset()
        ctx = Context(TOKENS[:t + 2], sample.aux[:t + 1], sample.last[:t + 1], sample.normed[:t + 1])
        draft.propose(ctx, 3, picker)
        for k, row in enumerate(picker.logits):
            assert torch.allclose(trained[k][t], row, atol=1e-4, rtol=1e-4), (variant, t, k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_step_attention_equals_attention_under_the_dense_mask_it_stands_for(dtype):
    torch.manual_seed(0)
    t, steps, n_h, n_kv, d = 12, 2, 6, 2, 8
    doc = torch.tensor([0] * 5 + [1] * 7)
    base = torch.ones(t, t, dtype=torch.bool).tril() & (doc[:, None] == doc[None, :])
    q = torch.randn(2, n_h, t, d, dtype=dtype)
    k, v = (torch.randn(2, n_kv, (steps + 1) * t, d, dtype=dtype) for _ in range(2))
    dense = torch.cat([base] + [torch.eye(t, dtype=torch.bool)] * steps, -1)
    expected = nn.attention(q.double(), k.double(), v.double(), dense)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert torch.allclose(nn.attention(q, k, v, nn.StepMask(base, steps)).double(), expected, atol=tol, rtol=tol)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny verifier with a tokenizer, and a self-distilled cache of it for each algorithm's aux ids."""
    root = tmp_path_factory.mktemp("train")
    verifier_dir = write_verifier(root / "verifier", tokenizer=True, scale=5)
    prompts = write_prompt_ids(root / "prompts.jsonl", [6] * 48)
    verifier = Verifier.from_pretrained(verifier_dir)
    caches = {}
    for name, aux_ids in (("eagle3", (2, 3)), ("heads", ())):
        opts = DataOptions([f"distill:{prompts}"], seq_len=64, max_new_tokens=20, batch=8, held_out=0.1)
        caches[name] = write_cache(root / f"cache-{name}", verifier, Text.from_verifier(verifier_dir), aux_ids, opts,
                                   lambda line: None)
    return root, verifier_dir, caches


def train_args(tiny, algorithm: str, out: Path, *extra: str) -> list[str]:
    root, verifier_dir, caches = tiny
    cache = caches["eagle3" if algorithm == "eagle3" else "heads"]
    return ["train", algorithm, "--verifier", str(verifier_dir), "--data", str(cache), "--out", str(out),
            "--verifier-name", "test/tiny", "--batch", "4", "--lr", "3e-3", "--warmup", "2", "--threads", "1",
            "--draft-vocab-size", "64", "--val-prompts", "2", "--val-tokens", "8", *extra]


def losses(work: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (work / "log.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_few_steps_lower_the_loss_and_give_a_strict_draft_the_runtime_runs(tiny, algorithm, tmp_path):
    out = tmp_path / algorithm
    assert main(train_args(tiny, algorithm, out, "--epochs", "3")) == 0
    seen = losses(tmp_path / f"{algorithm}.work")
    assert len(seen) >= 9 and sum(seen[-3:]) < sum(seen[:3])
    assert validate(out, "strict").findings == []
    verifier = Verifier.from_pretrained(tiny[1])
    draft, config = load_draft(out, verifier, "strict")
    assert config["specfmt_provenance"]["command"][:3] == ["specfmt", "train", algorithm]
    ctx_tokens = TOKENS[:6]
    out_v = verifier.forward(torch.tensor(ctx_tokens[:-1]), draft.aux_ids)
    assert draft.propose(Context(ctx_tokens, out_v.aux, out_v.last, out_v.normed), 3, Picker()).tokens.numel() == 3


def test_bfloat16_mixed_precision_follows_the_float32_losses_and_keeps_float32_weights(tiny, tmp_path):
    runs = {}
    for precision in ("float32", "bfloat16"):
        assert main(train_args(tiny, "eagle3", tmp_path / precision, "--epochs", "2", "--precision", precision,
                               "--save-dtype", "float32")) == 0
        runs[precision] = losses(tmp_path / f"{precision}.work")
    assert len(runs["float32"]) == len(runs["bfloat16"]) >= 6
    assert runs["float32"] != runs["bfloat16"]  # the products did run in bfloat16
    for exact, mixed in zip(runs["float32"], runs["bfloat16"], strict=True):
        assert mixed == pytest.approx(exact, rel=0.05)  # bfloat16 keeps 8 bits of mantissa: ~0.4% per product
    weights = load_file(tmp_path / "bfloat16" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())


def test_the_provenance_holds_the_last_validation_even_when_a_finished_run_is_resumed(tiny, tmp_path):
    args = train_args(tiny, "medusa", tmp_path / "draft", "--max-steps", "2")
    assert main(args) == 0
    log = [json.loads(line) for line in (tmp_path / "draft.work" / "log.jsonl").read_text().splitlines()]
    last = [r["validation"] for r in log if "validation" in r][-1]
    assert json.loads((tmp_path / "draft" / "config.json").read_text())["specfmt_provenance"]["validation"] == last
    assert main(args) == 0  # resumed at its end: nothing trained, nothing validated, the same statement
    provenance = json.loads((tmp_path / "draft" / "config.json").read_text())["specfmt_provenance"]
    assert provenance["validation"] == last and provenance["optimizer_steps"] == 2


def test_a_checkpoint_resumes_only_for_the_draft_it_was_written_for(tiny, tmp_path, capsys):
    assert main(train_args(tiny, "eagle3", tmp_path / "draft", "--max-steps", "2")) == 0
    capsys.readouterr()
    assert main(train_args(tiny, "eagle3", tmp_path / "draft", "--max-steps", "2", "--num-hidden-layers", "2")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "transformer_layer_config.num_hidden_layers 1 (now 2)" in err and "--restart" in err, err
    assert main(train_args(tiny, "eagle3", tmp_path / "draft", "--max-steps", "2", "--num-hidden-layers", "2",
                           "--restart")) == 0


def test_a_warm_start_begins_from_the_given_drafts_weights_and_records_it(tiny, tmp_path):
    first = tmp_path / "first"
    assert main(train_args(tiny, "eagle3", first, "--max-steps", "3", "--save-dtype", "float32")) == 0
    assert main(train_args(tiny, "eagle3", tmp_path / "zero", "--max-steps", "1", "--lr", "0", "--save-dtype",
                           "float32", "--init", str(first))) == 0
    given, started = load_file(first / "model.safetensors"), load_file(tmp_path / "zero" / "model.safetensors")
    assert given.keys() == started.keys() and all(torch.equal(given[n], started[n]) for n in given)
    init = json.loads((tmp_path / "zero" / "config.json").read_text())["specfmt_provenance"]["init"]
    first_provenance = json.loads((first / "config.json").read_text())["specfmt_provenance"]
    assert init == {"path": str(first), "provenance": first_provenance}


def test_the_provenance_writes_paths_under_the_home_directory_as_tilde_paths():
    from specfmt.train.outs import portable

    assert portable(["--data", "/home/ann/.cache/x", "--out", "/home/annex/d", "/home/ann"], "/home/ann/") == \
        ["--data", "~/.cache/x", "--out", "/home/annex/d", "~"]


def test_a_warm_start_from_a_draft_of_another_config_is_refused_naming_the_difference(tiny, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(train_args(tiny, "eagle3", first, "--max-steps", "1")) == 0
    capsys.readouterr()
    assert main(train_args(tiny, "eagle3", tmp_path / "second", "--max-steps", "1", "--num-hidden-layers", "2",
                           "--init", str(first))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"--init {first}" in err and "/transformer_layer_config" in err, err
    assert "layers.1.mlp.down_proj.weight: expected shape" in err, err


class Stop(Exception):
    pass


def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(tiny, tmp_path):
    assert main(train_args(tiny, "eagle3", tmp_path / "whole", "--epochs", "2", "--save-every", "3")) == 0

    def stop_after_step_4(record, total):
        if record.get("step") == 4:
            raise Stop

    import specfmt.train.commands as commands

    shown, commands.show = commands.show, stop_after_step_4
    try:
        with pytest.raises(Stop):
            main(train_args(tiny, "eagle3", tmp_path / "part", "--epochs", "2", "--save-every", "3"))
    finally:
        commands.show = shown
    assert json.loads((tmp_path / "part.work" / "checkpoint" / "state.json").read_text())["step"] == 3
    assert main(train_args(tiny, "eagle3", tmp_path / "part", "--epochs", "2", "--save-every", "3")) == 0
    whole = load_file(tmp_path / "whole" / "model.safetensors")
    part = load_file(tmp_path / "part" / "model.safetensors")
    assert whole.keys() == part.keys()
    assert all(torch.equal(whole[n], part[n]) for n in whole)


def test_two_gloo_ranks_equal_one_process_with_the_same_global_batch_and_print_once(tiny, tmp_path):
    assert main(train_args(tiny, "eagle3", tmp_path / "one", "--max-steps", "4", "--save-dtype", "float32")) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "specfmt.cli", *train_args(tiny, "eagle3", tmp_path / "two", "--max-steps", "4", "--save-dtype",
                                      "float32")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("step 4/4 ") == 1 and proc.stdout.count("train: ") == 1  # rank 0 alone prints
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5, rtol=1e-4), name
    assert any(not torch.equal(one[n], t) for n, t in tensors_after_init(tiny, tmp_path).items())


def tensors_after_init(tiny, tmp_path) -> dict:
    """The untrained draft: the one-process run's weights must differ from it (the test has teeth)."""
    assert main(train_args(tiny, "eagle3", tmp_path / "zero", "--max-steps", "1", "--lr", "0", "--save-dtype",
                           "float32")) == 0
    return load_file(tmp_path / "zero" / "model.safetensors")


def test_training_refuses_a_cache_made_for_other_aux_ids(tiny, tmp_path, capsys):
    root, verifier_dir, caches = tiny
    args = train_args(tiny, "eagle3", tmp_path / "x")
    args[args.index("--data") + 1] = str(caches["heads"])
    assert main(args) == 2
    assert "aux ids" in capsys.readouterr().err


def test_the_cache_reports_its_size_and_keeps_held_out_prompts(tiny):
    cache = Cache(tiny[2]["eagle3"])
    assert cache.index["bytes"] > 0 and len(cache) > 0
    assert cache.index["val_prompts"] and all(len(p) == 6 for p in cache.index["val_prompts"])
    sample, greedy = cache.sample(0, Verifier.from_pretrained(tiny[1]))
    assert sample.aux.shape == (sample.tokens.numel(), 2 * 32) and greedy.shape == sample.tokens.shape


def test_several_caches_train_as_one(tiny, tmp_path):
    from specfmt.train.datagen import Caches

    caches = Caches([tiny[2]["eagle3"], tiny[2]["eagle3"]])
    one = Cache(tiny[2]["eagle3"])
    assert len(caches) == 2 * len(one) and caches.index["tokens"] == 2 * one.index["tokens"]
    verifier = Verifier.from_pretrained(tiny[1])
    assert torch.equal(caches.sample(len(one), verifier)[0].tokens, one.sample(0, verifier)[0].tokens)
    args = train_args(tiny, "eagle3", tmp_path / "two-caches", "--max-steps", "2")
    args[args.index("--data") + 1:args.index("--data") + 1] = [str(tiny[2]["eagle3"]), "--data"]
    assert main(args) == 0


def test_a_prompt_limit_takes_prompts_evenly_across_the_source():
    from specfmt.train.sources import spread

    assert spread(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert spread(list(range(7)), 3) == [0, 2, 4]
    assert spread(list(range(4)), 0) == spread(list(range(4)), 9) == [0, 1, 2, 3]
