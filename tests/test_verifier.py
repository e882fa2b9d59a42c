"""The plain-torch verifier against Hugging Face transformers (a test-only dependency), random weights."""

import pytest
import torch

from specfmt.verifier import Verifier

transformers = pytest.importorskip("transformers")

FAMILIES = {
    "llama3-rope": ("LlamaConfig", "LlamaForCausalLM", {"rope_parameters": {
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}),
    "llama-bias": ("LlamaConfig", "LlamaForCausalLM", {"attention_bias": True}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
    "qwen2-tied": ("Qwen2Config", "Qwen2ForCausalLM", {"tie_word_embeddings": True}),
}
N_LAYERS = 4


def hf_model(family: str, path, seed: int = 0):
    config_cls, model_cls, extra = FAMILIES[family]
    config = getattr(transformers, config_cls)(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=N_LAYERS, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, **extra)
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    model.save_pretrained(path)
    return model


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_match_transformers_within_1e_4_across_cached_chunks(family, tmp_path):
    model = hf_model(family, tmp_path)
    verifier = Verifier.from_pretrained(tmp_path)
    ids = torch.randint(0, 96, (24,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids[None]).logits[0]
    chunks = [verifier.forward(part).logits for part in (ids[:10], ids[10:11], ids[11:])]
    assert (torch.cat(chunks) - expected).abs().max() < 1e-4


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_aux_hidden_states_are_the_residual_stream_entering_each_layer(family, tmp_path):
    model = hf_model(family, tmp_path)
    verifier = Verifier.from_pretrained(tmp_path)
    ids = torch.randint(0, 96, (16,), generator=torch.Generator().manual_seed(2))
    captured = {}
    hook = model.model.layers[-1].register_forward_hook(
        lambda mod, inp, out: captured.setdefault("last", out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        hidden = model(ids[None], output_hidden_states=True).hidden_states
    hook.remove()
    out = verifier.forward(ids, aux_ids=(0, 1, 3, N_LAYERS))
    H = 64
    for slot, k in enumerate((0, 1, 3)):
        assert (out.aux[:, slot * H:(slot + 1) * H] - hidden[k][0]).abs().max() < 1e-5
    last = captured["last"].reshape(-1, H)
    assert (out.aux[:, 3 * H:] - last).abs().max() < 1e-5  # id N: before the final norm
    assert (out.normed - hidden[N_LAYERS][0]).abs().max() < 1e-5  # transformers' hidden_states[N] is normed


def test_truncate_rolls_back_rejected_positions(tmp_path):
    hf_model("qwen3", tmp_path)
    verifier = Verifier.from_pretrained(tmp_path)
    ids = torch.randint(0, 96, (12,), generator=torch.Generator().manual_seed(3))
    verifier.forward(ids[:8])
    verifier.forward(torch.tensor([5, 6, 7]))  # drafts that get rejected
    verifier.truncate(8)
    rolled = verifier.forward(ids[8:]).logits
    fresh = Verifier.from_pretrained(tmp_path)
    assert len(verifier) == 12
    assert (rolled - fresh.forward(ids).logits[8:]).abs().max() < 1e-5


def test_a_sharded_checkpoint_loads_like_a_single_file(tmp_path):
    model = hf_model("llama3-rope", tmp_path / "single")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    ids = torch.arange(10)
    single = Verifier.from_pretrained(tmp_path / "single").forward(ids).logits
    sharded = Verifier.from_pretrained(tmp_path / "sharded").forward(ids).logits
    assert torch.equal(single, sharded)
