"""The writer: strict checkpoints, written atomically, that round-trip byte for byte."""

import filecmp
import json

import pytest
import torch
from safetensors import safe_open

from builders import VARIANTS, H, V, config_of, tensors_for, write_variant
from specfmt import ValidationError, load, save, validate
from specfmt.publish import UnsafeOut
from specfmt.safetensors_file import write_tensors

WEIGHTED = [v for v in VARIANTS if v != "ngram"]


def same_tree(a, b) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_saved_checkpoint_validates_clean_under_both_profiles(variant, tmp_path):
    path = write_variant(variant, tmp_path / variant)
    for profile in ("strict", "compat"):
        assert validate(path, profile, scan_values=True).findings == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_load_then_save_reproduces_the_checkpoint_byte_for_byte(variant, tmp_path):
    first = write_variant(variant, tmp_path / "first")
    config, tensors = load(first)
    second = save(config, tensors, tmp_path / "second")
    assert same_tree(first, second)


@pytest.mark.parametrize("variant", WEIGHTED)
def test_a_saved_checkpoint_loads_with_safetensors_safe_open(variant, tmp_path):
    path = write_variant(variant, tmp_path / variant)
    expected = tensors_for(config_of(variant))
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == sorted(expected)
        for name in expected:
            assert torch.equal(f.get_tensor(name), expected[name])


def test_a_sharded_save_round_trips_and_validates(tmp_path):
    first = write_variant("dspark_gated", tmp_path / "first", max_shard_bytes=16_000)
    assert len(json.loads((first / "model.safetensors.index.json").read_text())["weight_map"]) > 10
    assert validate(first, "strict").findings == []
    config, tensors = load(first)
    second = save(config, tensors, tmp_path / "second", max_shard_bytes=16_000)
    assert same_tree(first, second)


def test_save_refuses_a_non_strict_checkpoint_and_leaves_nothing_behind(tmp_path):
    config = config_of("eagle3")
    tensors = tensors_for(config)
    del tensors["d2t"]
    del config["norm_before_residual"]
    with pytest.raises(ValidationError) as info:
        save(config, tensors, tmp_path / "out")
    codes = {(f.code, f.pointer) for f in info.value.findings}
    assert codes == {("hazard.d2t_missing", "/d2t"), ("config.required", "/norm_before_residual")}
    assert list(tmp_path.iterdir()) == []


def test_save_does_not_overwrite_unless_asked(tmp_path):
    path = write_variant("eagle3", tmp_path / "ckpt")
    with pytest.raises(UnsafeOut):
        write_variant("eagle3", path)
    write_variant("eagle", path, overwrite=True)
    assert json.loads((path / "config.json").read_text())["speculators_model_type"] == "eagle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_the_config_is_written_canonically(tmp_path):
    path = write_variant("eagle3", tmp_path / "ckpt")
    text = (path / "config.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_scan_values_finds_nan_weights(tmp_path):
    config = config_of("mtp")
    tensors = tensors_for(config)
    tensors["mtp_layers.0.input_proj.weight"][0, 0] = float("nan")
    path = save(config, tensors, tmp_path / "ckpt")  # header-only validation cannot see values
    assert validate(path, "compat").findings == []
    report = validate(path, "compat", scan_values=True)
    assert report.codes() == {("hazard.nonfinite", "/mtp_layers.0.input_proj.weight")}
    assert report.findings[0].found == 1


@pytest.mark.parametrize("profile", ["compat", "strict"])
def test_an_all_nan_tensor_the_draft_reads_is_an_error_in_both_profiles(tmp_path, profile):
    """speculators' NaN sentinels, saved before the verifier's embedding and head were copied in."""
    config = config_of("eagle3")
    tensors = tensors_for(config)
    for name in ("embed_tokens.weight", "lm_head.weight"):
        tensors[name] = torch.full_like(tensors[name], float("nan"))
    path = save(config, tensors, tmp_path / "ckpt")
    report = validate(path, profile, scan_values=True)
    assert {(f.code, f.pointer, f.severity) for f in report.findings} == {
        ("weights.nonfinite", "/embed_tokens.weight", "error"), ("weights.nonfinite", "/lm_head.weight", "error")}


def test_an_all_nan_tensor_nothing_reads_stays_a_warning_under_compat(tmp_path):
    config = config_of("mtp")
    tensors = tensors_for(config)
    path = save(config, tensors, tmp_path / "ckpt")
    write_tensors(path / "model.safetensors", {**tensors, "verifier_lm_head.weight": torch.full((V, H), float("nan"))},
                  {"format": "pt"})
    report = validate(path, "compat", scan_values=True)
    assert report.ok
    assert ("hazard.nonfinite", "/verifier_lm_head.weight") in report.codes()


def test_scan_values_finds_absolute_ids_stored_as_d2t_offsets(tmp_path):
    config = config_of("eagle3")
    tensors = tensors_for(config)
    tensors["d2t"] = tensors["d2t"] + torch.arange(tensors["d2t"].numel())  # absolute ids, not offsets
    path = save(config, tensors, tmp_path / "ckpt")
    assert validate(path, "compat", scan_values=True).codes() == {("hazard.vocab_mapping", "/d2t")}


def test_scan_values_finds_a_t2d_that_disagrees_with_d2t(tmp_path):
    config = config_of("eagle3")
    tensors = tensors_for(config)
    tensors["t2d"] = torch.roll(tensors["t2d"], 1)
    path = save(config, tensors, tmp_path / "ckpt")
    assert validate(path, "compat", scan_values=True).codes() == {("hazard.vocab_mapping", "/t2d")}


def test_the_tensor_writer_round_trips_every_dtype_and_layout_through_safetensors(tmp_path):
    from safetensors.torch import load_file

    tensors = {"bf16": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3), "f32": torch.randn(3),
               "transposed": torch.randn(2, 3).t(), "i64": torch.arange(4), "mask": torch.tensor([True, False]),
               "scalar": torch.tensor(2.5)}
    write_tensors(tmp_path / "t.safetensors", tensors, {"format": "pt"})
    back = load_file(tmp_path / "t.safetensors")
    assert back.keys() == tensors.keys()
    assert all(torch.equal(back[n], t) and back[n].dtype == t.dtype for n, t in tensors.items())


def nested_items(doc: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for key, value in doc.items():
        out += nested_items(value, prefix + (key,)) if isinstance(value, dict) else [(prefix + (key,), value)]
    return out


@pytest.mark.parametrize("variant", ["eagle3", "dspark", "medusa", "independent_qwen2_tied"])
def test_a_typed_model_saves_the_document_it_was_made_from_with_its_defaults_explicit(variant, tmp_path):
    from specfmt import models

    config = config_of(variant)
    typed = models.STRICT.validate_python(config)
    path = save(typed, tensors_for(config), tmp_path / variant)
    written = json.loads((path / "config.json").read_text())
    written_items = dict(nested_items(written))
    assert all(written_items[key] == value for key, value in nested_items(config))
    assert models.STRICT.validate_python(written) == typed
    assert validate(path, "strict").findings == []
