"""The recipes of specfmt train (issue 21 item 6): one registry, one signature, tensors by role. Each recipe starts
the draft its docstring describes; the same seed trains the same tensors; a new recipe is its module and one
registry line, and its own options become flags of specfmt train with their bounds."""

import json
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file

from builders import V, verifier_for, write_prompt_ids, write_verifier
from specfmt.cli import main
from specfmt.defaults import resolve
from specfmt.runtime import build_draft
from specfmt.text import Text
from specfmt.train.datagen import DataOptions, write_cache
from specfmt.train.options import TrainOptions, option
from specfmt.train.recipes import RECIPES, Recipe, Start, medusa
from specfmt.train.recipes.common import Roles
from specfmt.train.recipes.eagle3 import Eagle3Options
from specfmt.verifier import Verifier
from specfmt.weights import bind_roles

OWN = {Eagle3Options: Eagle3Options(draft_vocab_size=64)}  # a draft vocabulary smaller than the tiny V = 128


def start_of(algorithm: str, counts: torch.Tensor | None = None, seed: int = 0) -> tuple[Start, Verifier]:
    verifier = verifier_for(0)
    recipe = RECIPES[algorithm]
    own = OWN[recipe.options] if recipe.options else None
    counts = torch.arange(V) if counts is None else counts
    return recipe.make(verifier, "test/tiny", TrainOptions(steps=3, seed=seed), own, counts), verifier


@pytest.mark.parametrize("algorithm", sorted(RECIPES))
def test_each_recipe_starts_a_draft_the_runtime_builds_with_its_frozen_tensors_among_its_own(algorithm):
    start, verifier = start_of(algorithm)
    draft = build_draft(resolve(start.config), start.tensors, verifier)
    assert start.frozen <= start.tensors.keys()
    assert draft.aux_ids == RECIPES[algorithm].aux_ids(verifier.num_layers)


def test_the_eagle3_recipe_starts_from_the_verifiers_rows_of_the_most_frequent_tokens_frozen_and_norms_at_one():
    counts = torch.zeros(V)
    counts[V - 64:] = 1  # the 64 highest ids are the supervised ones
    start, verifier = start_of("eagle3", counts)
    w = bind_roles("eagle3", resolve(start.config), start.tensors)
    assert torch.equal(w["lm_head"], verifier.lm_head.float()[V - 64:])
    assert torch.equal(w["d2t"], torch.full((64,), V - 64)) and int(w["t2d"].sum()) == 64
    assert "embed_tokens" not in w  # the verifier's embedding is shared
    assert torch.equal(w["norm"], torch.ones_like(w["norm"]))
    assert all(torch.equal(t, torch.ones_like(t)) for role, t in w["layer0"].items() if role.endswith("norm"))
    assert start.frozen == set(Roles(start.config).names("lm_head", "d2t", "t2d")) and len(start.frozen) == 3


def test_the_eagle3_recipe_turns_the_research_layers_norms_on_only_when_asked(tiny, tmp_path):
    start, verifier = start_of("eagle3")
    assert not start.config["norm_before_residual"] and not start.config["norm_before_fc"]  # what SGLang serves
    assert train(tiny, "eagle3", tmp_path / "d", "--norm-before-residual", "--norm-before-fc") == 0
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["norm_before_residual"] and config["norm_before_fc"]
    on = RECIPES["eagle3"].make(verifier, "test/tiny", TrainOptions(), Eagle3Options(64, 1, True, True),
                                torch.arange(V))
    w = bind_roles("eagle3", resolve(on.config), on.tensors)
    assert torch.equal(w["input_norm"], torch.ones_like(w["input_norm"]))  # the RMSNorm over the aux states
    build_draft(resolve(on.config), on.tensors, verifier)


def test_the_eagle3_recipe_stacks_as_many_decoder_layers_as_asked_and_the_runtime_runs_them(tiny, tmp_path):
    assert start_of("eagle3")[0].config["transformer_layer_config"]["num_hidden_layers"] == 1
    assert train(tiny, "eagle3", tmp_path / "d", "--num-hidden-layers", "2") == 0
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["transformer_layer_config"]["num_hidden_layers"] == 2
    tensors = load_file(tmp_path / "d" / "model.safetensors")
    assert "layer" in bind_roles("eagle3", resolve(config), tensors)  # layers 1 to L-1
    build_draft(resolve(config), tensors, Verifier.from_pretrained(tiny[0]))


def test_medusa_starts_at_zero_and_mlp_speculator_layer_norms_at_the_identity():
    start, _ = start_of("medusa")
    assert all(not t.any() for t in start.tensors.values())
    start, _ = start_of("mlp_speculator")
    roles = Roles(start.config)
    for name, t in start.tensors.items():
        if roles.role_of[name] in ("ln", "ln_bias"):
            assert torch.equal(t, torch.full_like(t, float(roles.role_of[name] == "ln"))), name
        else:
            assert t.std() > 0, name


@pytest.mark.parametrize("algorithm", sorted(RECIPES))
def test_a_recipe_starts_the_same_draft_for_the_same_seed_and_another_for_another(algorithm):
    one, _ = start_of(algorithm, seed=3)
    again, _ = start_of(algorithm, seed=3)
    other, _ = start_of(algorithm, seed=4)
    assert one.config == again.config and one.tensors.keys() == again.tensors.keys() == other.tensors.keys()
    assert all(torch.equal(one.tensors[n], again.tensors[n]) for n in one.tensors)
    if algorithm != "medusa":  # medusa starts at zero whatever the seed
        assert any(not torch.equal(one.tensors[n], other.tensors[n]) for n in one.tensors)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny verifier with a tokenizer and a self-distilled cache for each aux-id set of the registry."""
    root = tmp_path_factory.mktemp("recipes")
    verifier_dir = write_verifier(root / "verifier", tokenizer=True, scale=5)
    prompts = write_prompt_ids(root / "prompts.jsonl", [6] * 32)
    verifier = Verifier.from_pretrained(verifier_dir)
    caches = {}
    for aux_ids in {r.aux_ids(verifier.num_layers) for r in RECIPES.values()}:
        opts = DataOptions([f"distill:{prompts}"], seq_len=64, max_new_tokens=12, batch=8, held_out=0.1)
        caches[aux_ids] = write_cache(root / f"cache-{len(caches)}", verifier, Text.from_verifier(verifier_dir),
                                      aux_ids, opts, lambda line: None)
    return verifier_dir, verifier.num_layers, caches


def train(tiny, algorithm: str, out, *extra: str, recipe: Recipe | None = None) -> int:
    verifier_dir, layers, caches = tiny
    cache = caches[(recipe or RECIPES[algorithm]).aux_ids(layers)]
    return main(["train", algorithm, "--verifier", str(verifier_dir), "--data", str(cache), "--out", str(out),
                 "--verifier-name", "test/tiny", "--batch", "4", "--lr", "3e-3", "--warmup", "1", "--threads", "1",
                 "--draft-vocab-size", "64", "--val-prompts", "1", "--val-tokens", "4", "--max-steps", "3",
                 "--save-dtype", "float32", *extra])


@pytest.mark.parametrize("algorithm", sorted(RECIPES))
def test_the_same_seed_trains_the_same_tensors(tiny, tmp_path, algorithm):
    # Issue 21 item 6 moved the recipes into a registry: the tensors trained before and after it were compared
    # for equality (max difference 0); this keeps a run reproducible.
    for name in ("one", "two"):
        assert train(tiny, algorithm, tmp_path / name, "--seed", "5") == 0
    one, two = (load_file(tmp_path / name / "model.safetensors") for name in ("one", "two"))
    assert one.keys() == two.keys() and all(torch.equal(one[n], two[n]) for n in one)


@dataclass
class ScaledOptions:
    init_scale: float = option(0.0, "standard deviation of the heads' first weights", bounds=(0.0, 1.0))


def scaled_medusa(verifier, verifier_name, opts, own: ScaledOptions, token_counts) -> Start:
    start = medusa.make(verifier, verifier_name, opts, None, token_counts)
    g = torch.Generator().manual_seed(opts.seed)
    return Start(start.config, {n: torch.randn(t.shape, generator=g) * own.init_scale
                                for n, t in start.tensors.items()})


def test_a_recipe_in_one_registry_line_trains_with_its_own_flag_and_bounds(tiny, tmp_path, monkeypatch, capsys):
    recipe = Recipe(scaled_medusa, options=ScaledOptions)
    monkeypatch.setitem(RECIPES, "scaled_medusa", recipe)
    assert train(tiny, "scaled_medusa", tmp_path / "bad", "--init-scale", "2", recipe=recipe) == 2
    err = capsys.readouterr().err.strip()
    assert err == "specfmt train: --init-scale: expected a finite number at least 0 and at most 1, found 2", err
    assert train(tiny, "scaled_medusa", tmp_path / "draft", "--init-scale", "0.5", recipe=recipe) == 0
    assert any(t.abs().max() > 0.2 for t in load_file(tmp_path / "draft" / "model.safetensors").values())
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert "--init-scale INIT_SCALE scaled_medusa: standard deviation of the heads' first weights" in shown
