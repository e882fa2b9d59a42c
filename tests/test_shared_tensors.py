"""A DFlash or DSpark draft may leave out its embedding, and with the full vocabulary its LM head too: the
speculators library (0.9) saves neither, and the runtime binds the verifier's (ALG-DFLASH-5)."""

import pytest
import torch

from builders import VERIFIER_CONFIG, config_of, tensors_for, verifier_for
from specfmt import save, validate
from specfmt.defaults import resolve
from specfmt.findings import ValidationError
from specfmt.proposal import Context, RecordingPicker
from specfmt.runtime import build_draft, load_draft

FULL_VOCAB = ["dflash_fullvocab", "dspark_fullvocab_gated"]
SHARED = ("lm_head.weight", "embed_tokens.weight")
PROMPT = [1, 5, 9, 3, 7, 5, 9, 3]  # the last token is pending: the draft's anchor


def draft_tensors(variant: str, seed: int = 1) -> dict:
    """The variant's random tensors, scaled like builders.draft_for so that proposals vary."""
    tensors = tensors_for(resolve(config_of(variant)), seed)
    return {k: v * 10 if v.is_floating_point() else v for k, v in tensors.items()}


def draft_logits(resolved: dict, tensors: dict, verifier) -> list:
    """The logits of each of 3 greedy proposals after PROMPT."""
    draft = build_draft(resolved, tensors, verifier)
    verifier.truncate(0)
    out = verifier.forward(torch.tensor(PROMPT[:-1]), draft.aux_ids)
    recorder = RecordingPicker()
    draft.propose(Context(list(PROMPT), out.aux, out.last, out.normed), 3, recorder)
    return recorder.logits


@pytest.mark.parametrize("variant", FULL_VOCAB)
def test_a_full_vocab_draft_without_head_and_embedding_drafts_as_with_the_verifiers_copied_in(variant):
    verifier = verifier_for(0)
    resolved = resolve(config_of(variant))
    tensors = draft_tensors(variant)
    without = {k: v for k, v in tensors.items() if k not in SHARED}
    copied = {**without, "lm_head.weight": verifier.lm_head.clone(),
              "embed_tokens.weight": verifier.embed_tokens.clone()}
    shared = draft_logits(resolved, without, verifier)
    assert all(torch.equal(a, b) for a, b in zip(shared, draft_logits(resolved, copied, verifier), strict=True))
    own = draft_logits(resolved, tensors, verifier)  # the draft's own random head: other logits
    assert not any(torch.equal(a, b) for a, b in zip(shared, own, strict=True))


@pytest.mark.parametrize("variant", FULL_VOCAB)
def test_a_full_vocab_draft_saved_without_head_and_embedding_is_strict_and_loads(variant, tmp_path):
    tensors = {k: v for k, v in draft_tensors(variant).items() if k not in SHARED}
    path = save(config_of(variant), tensors, tmp_path / variant)
    assert validate(path, "strict").findings == []
    verifier = verifier_for(0)
    draft, _ = load_draft(path, verifier, "strict")
    assert draft.propose  # bound: the verifier's head and embedding stand in


@pytest.mark.parametrize("variant", ["dflash", "dspark"])
def test_a_reduced_vocab_draft_without_its_head_is_missing_it(variant, tmp_path):
    tensors = {k: v for k, v in draft_tensors(variant).items() if k != "lm_head.weight"}
    with pytest.raises(ValidationError) as refused:
        save(config_of(variant), tensors, tmp_path / variant)
    assert ("layout.missing", "/lm_head.weight") in {(f.code, f.pointer) for f in refused.value.findings}


def test_a_draft_without_head_is_rejected_when_the_verifier_is_wider(tmp_path):
    config = config_of("dflash_fullvocab")
    config["target_hidden_size"] = config["speculators_config"]["verifier"]["hidden_size"] = 64
    resolved = resolve(config)
    tensors = {k: v for k, v in tensors_for(resolved).items() if k not in SHARED}
    with pytest.raises(ValueError, match="lm_head is absent"):  # bound to a verifier 64 wide, as the draft says
        build_draft(resolved, tensors, verifier_for(0, config=dict(VERIFIER_CONFIG, hidden_size=64)))
