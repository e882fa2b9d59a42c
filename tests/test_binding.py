"""specfmt.binding: a draft's statements about its verifier against the verifier it runs with, checked before any
forward; each finding names both sides."""

import pytest

from builders import VARIANTS, VERIFIER_CONFIG, config_of, verifier_for, write_variant
from specfmt.binding import check
from specfmt.defaults import resolve
from specfmt.runtime import BindingError, load_draft

FACTS = {key: VERIFIER_CONFIG[key] for key in ("hidden_size", "num_hidden_layers", "vocab_size")}


def codes(findings) -> set[tuple[str, str]]:
    return {(f.code, f.pointer) for f in findings}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_builder_variant_binds_to_the_verifier_it_was_made_for(variant):
    assert check(resolve(config_of(variant)), FACTS, "config.json", "V/config.json") == []


def test_a_vocabulary_the_verifier_lacks_is_a_verifier_mismatch_at_the_binding_pointer():
    found = check(resolve(config_of("dflash")), FACTS | {"vocab_size": 256}, "D/config.json", "V/config.json")
    assert codes(found) == {("config.verifier_mismatch", "/speculators_config/verifier/vocab_size")}
    assert found[0].message == ("draft's verifier.vocab_size 128 (D/config.json#/speculators_config/verifier/"
                                "vocab_size), verifier's vocab_size 256 (V/config.json)")


def test_a_compat_draft_without_binding_facts_is_checked_through_its_layout_symbols():
    config = config_of("eagle3")
    for key in FACTS:
        del config["speculators_config"]["verifier"][key]
    found = check(resolve(config), FACTS | {"hidden_size": 64}, "D/config.json", "V/config.json")
    assert [f.message for f in found] == ["draft's H_t 32 (= target_hidden_size ?? H of D/config.json), "
                                          "verifier's hidden_size 64 (V/config.json)"]


def test_an_aux_layer_id_past_the_verifiers_last_layer_is_named_with_the_verifiers_layer_count():
    config = config_of("eagle3")  # aux ids [1, 3, 5]
    del config["speculators_config"]["verifier"]["num_hidden_layers"]
    found = check(resolve(config), FACTS | {"num_hidden_layers": 4}, "D/config.json", "V/config.json")
    assert codes(found) == {("config.aux_layer_range", "/eagle_aux_hidden_state_layer_ids/2")}
    assert "verifier's num_hidden_layers 4 (V/config.json)" in found[0].message


def test_mtp_is_bound_to_the_verifiers_layer_count_through_its_own_layer_config():
    config = config_of("mtp")
    del config["speculators_config"]["verifier"]["num_hidden_layers"]
    found = check(resolve(config), FACTS | {"num_hidden_layers": 2}, "D/config.json", "V/config.json")
    assert codes(found) == {("config.verifier_mismatch", "/speculators_config/verifier/num_hidden_layers")}


def test_load_draft_refuses_a_draft_for_another_verifier_before_any_forward(tmp_path):
    draft = write_variant("mlp_speculator", tmp_path / "draft")
    verifier = verifier_for(0, config=dict(VERIFIER_CONFIG, vocab_size=256))
    with pytest.raises(BindingError) as refused:
        load_draft(draft, verifier, verifier_dir=tmp_path / "verifier")
    assert codes(refused.value.findings) == {("config.verifier_mismatch", "/speculators_config/verifier/vocab_size")}
    assert f"({tmp_path / 'verifier' / 'config.json'})" in str(refused.value)
