"""Benchmark: header-only validation of a full-size EAGLE-3 draft for Llama-3.3-70B.

The checkpoint has its real size (H 8192, V 128256, V_d 32000, bf16: about 4.9 GB) but is a sparse
file, so it costs no disk. Prints, side by side in one run:
- the bytes validate() reads (must stay under 1 MB, whatever the weights' size);
- the median time of validate() and of a bare json.loads of the header bytes, and their ratio;
- the floor any validator pays before validating anything (read and parse config.json and the
  header), as a ratio to the same json.loads;
- validate() on the same draft with a 10x larger vocabulary (about 24 GB sparse): the time ratio shows that
  the cost does not grow with the weights.
Absolute times are noise on a shared machine; the ratios are the result.
"""

from __future__ import annotations

import io
import json
import statistics
import struct
import tempfile
import time
from pathlib import Path

from specfmt import validate
from specfmt.defaults import resolve
from specfmt.layout import expand
from specfmt.safetensors_file import write_sparse
from specfmt.schemas import VERSION
from specfmt.validate import read_weights

H, V, V_D, INTER, HEADS, KV, HEAD_DIM, N = 8192, 128256, 32000, 28672, 64, 8, 128, 80
REPEATS = 200


def config(vocab: int = V) -> dict:
    return {
        "speculators_model_type": "eagle3", "speculators_format_version": VERSION, "dtype": "bfloat16",
        "speculators_config": {
            "algorithm": "eagle3", "default_proposal_method": "greedy",
            "proposal_methods": [{"proposal_type": "greedy", "speculative_tokens": 3, "verifier_accept_k": 1,
                                  "accept_tolerance": 0.0}],
            "verifier": {"name_or_path": "meta-llama/Llama-3.3-70B-Instruct", "architectures": ["LlamaForCausalLM"],
                         "hidden_size": H, "num_hidden_layers": N, "vocab_size": vocab}},
        "transformer_layer_config": {
            "model_type": "llama", "hidden_size": H, "intermediate_size": INTER, "num_attention_heads": HEADS,
            "num_key_value_heads": KV, "head_dim": HEAD_DIM, "num_hidden_layers": 1, "vocab_size": vocab,
            "rms_norm_eps": 1e-5, "attention_bias": False, "max_position_embeddings": 131072, "hidden_act": "silu",
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}},
        "draft_vocab_size": V_D, "norm_before_residual": False, "norm_before_fc": False, "fc_norm": False,
        "norm_output": False, "target_hidden_size": None, "eagle_aux_hidden_state_layer_ids": [2, 40, 77],
    }


def build(root: Path, vocab: int = V) -> Path:
    cfg = config(vocab)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    resolved = resolve(cfg)
    _, expected, errors = expand("eagle3", resolved)
    assert not errors, errors
    dtype = {"float": "BF16", "int64": "I64", "bool": "BOOL"}
    entries = [(e.name, dtype[e.dtype], e.shape) for e in expected if e.active]
    write_sparse(root / "model.safetensors", entries)
    return root


def bytes_read() -> int | None:
    """This process's bytes read through read syscalls so far (Linux /proc/self/io rchar)."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except OSError:
        return None


def read_and_parse(path: Path) -> tuple[dict, dict]:
    """What every validator must do before checking anything: read and parse both JSON documents."""
    config_doc = json.loads((path / "config.json").read_bytes())
    with open(path / "model.safetensors", "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return config_doc, json.loads(f.read(length))


def median_seconds(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "eagle3-llama-3.3-70b")
        weights = path / "model.safetensors"
        with open(weights, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = f.read(length)
        report = validate(path, "strict")  # warm caches: schemas, parsed expressions
        assert report.findings == [], [str(f) for f in report.findings]
        first, second = bytes_read(), bytes_read()  # reading /proc/self/io is counted too
        before = bytes_read()
        validate(path, "strict")
        after = bytes_read()
        read = None if before is None else (after - before) - (second - first)
        t_validate = median_seconds(lambda: validate(path, "strict"))
        t_weights = median_seconds(lambda: read_weights(path))
        t_json = median_seconds(lambda: json.loads(header))
        t_io_json = median_seconds(lambda: json.loads(io.BytesIO(header).read()))
        t_floor = median_seconds(lambda: read_and_parse(path))
        big = build(Path(tmp) / "eagle3-vocab-x10", vocab=10 * V)
        assert validate(big, "strict").findings == []
        t_big = median_seconds(lambda: validate(big, "strict"))
        size = weights.stat().st_size
        print(f"checkpoint: eagle3 draft for Llama-3.3-70B, {size / 1e9:.2f} GB of weights (sparse), "
              f"header {length} bytes")
        config_bytes = len((path / "config.json").read_bytes())
        print(f"bytes read by validate (read syscalls): {read} (config.json {config_bytes} + "
              f"header {8 + length}); under 1 MB: {read is not None and read < 1 << 20}")
        print(f"median validate(strict):        {t_validate * 1e3:.3f} ms")
        print(f"  of which reading the header:  {t_weights * 1e3:.3f} ms")
        print(f"median json.loads(header):      {t_json * 1e3:.3f} ms (from a buffer: {t_io_json * 1e3:.3f} ms)")
        print(f"ratio validate / json.loads(header):     {t_validate / t_json:.1f}x (goal <= 3x)")
        print(f"ratio header read / json.loads(header):  {t_weights / t_json:.1f}x")
        print(f"floor, read+parse config and header:     {t_floor / t_json:.1f}x json.loads(header) "
              f"({t_floor * 1e3:.3f} ms), before any check")
        print(f"validate: {(big / 'model.safetensors').stat().st_size / 1e9:.1f} GB draft / "
              f"{size / 1e9:.1f} GB draft: {t_big / t_validate:.2f}x")


if __name__ == "__main__":
    main()
