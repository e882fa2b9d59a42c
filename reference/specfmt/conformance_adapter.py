"""The reference adapter: specfmt itself, speaking the conformance protocol (conformance/PROTOCOL.md).

Installed with `specfmt[runtime]`, it runs as `specfmt conformance-adapter` or `python -m
specfmt.conformance_adapter`: `specfmt-conformance run --adapter "specfmt conformance-adapter"`.
The repository's broken adapters (conformance/adapters/broken) reuse `serve` with a transform that damages one
kind of answer, or with a handler that swaps one numerics operation (OPERATIONS) for a damaged one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file

from specfmt import __version__, jsonlines, tree_step, validate, validate_config
from specfmt.findings import Refused
from specfmt.generate import generate
from specfmt.proposal import Context, Draft, Picker, Proposal, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.safetensors_file import write_tensors
from specfmt.tree import (
    DynamicTree,
    StaticTree,
    Tree,
    node_order,
    path_problems,
    verify_tree_greedy,
    verify_tree_sampling,
)
from specfmt.verification import process_logits, verify_greedy, verify_sampling, verify_top_k
from specfmt.verifier import Verifier

PROTOCOL = 1
Transform = Callable[[dict, dict], dict]
Tensors = dict[str, torch.Tensor]


@dataclass
class Model:
    """What `load` made of a checkpoint and a verifier (either may be absent)."""

    verifier: Verifier | None
    draft: Draft | None


HANDLES: dict[str, Model] = {}


def context(x: Tensors) -> Context:
    return Context(x["token_ids"].tolist(), x["aux"], x["last"], x["normed"])


def verifier_forward(model: Model, params: dict, x: Tensors) -> Tensors:
    model.verifier.truncate(0)
    out = model.verifier.forward(x["token_ids"], tuple(params["aux_ids"]))
    return {"logits": out.logits, "aux": out.aux}


def propose(model: Model, params: dict, x: Tensors) -> Tensors:
    model.draft.reset()
    return {"draft_tokens": model.draft.propose(context(x), params["k"], Picker()).tokens}


def draft_forward(model: Model, params: dict, x: Tensors) -> Tensors:
    model.draft.reset()
    recorder = RecordingPicker()
    model.draft.propose(context(x), params["k"], recorder)
    return {"draft_logits": torch.stack(recorder.logits)}


def verdict(result) -> Tensors:
    return {"accepted": torch.tensor([result.accepted]), "next_token": torch.tensor([result.next_token])}


def run_verify_greedy(model: Model, params: dict, x: Tensors) -> Tensors:
    return verdict(verify_greedy(x["draft_tokens"], x["target_logits"]))


def run_verify_sampling(model: Model, params: dict, x: Tensors) -> Tensors:
    return verdict(verify_sampling(x["draft_tokens"], x["q"], x["p"], x["uniforms"], float(x["final_uniform"][0])))


def run_verify_top_k(model: Model, params: dict, x: Tensors) -> Tensors:
    return verdict(verify_top_k(x["draft_tokens"], x["target_logits"], params["accept_k"], params["accept_tolerance"]))


def run_process_logits(model: Model, params: dict, x: Tensors) -> Tensors:
    return {"probs": process_logits(x["logits"], params["temperature"], params["top_k"], params["top_p"])}


def run_generate(model: Model, params: dict, x: Tensors) -> Tensors:
    result = generate(model.verifier, model.draft, x["prompt_ids"].tolist(), params["max_new_tokens"],
                      Proposal("greedy", params["k"]))
    return generation(result)


def generation(result) -> Tensors:
    counters = result.stats.counters()
    return {"tokens": torch.tensor(result.tokens, dtype=torch.long),
            "drafts": torch.tensor([counters["drafts"]], dtype=torch.long),
            "accepted_per_position": torch.tensor(counters["accepted_per_position"], dtype=torch.long)}


def tree_shape(params: dict) -> StaticTree | DynamicTree:
    """The `tree` param: {"paths": [...]} (a static tree, refused unless it is one) or {"speculative_tokens",
    "expansion_factor", "depth"} (a dynamic tree). Spec: spec/trees.md#TRE-2, spec/trees.md#TRE-4"""
    shape = params["tree"]
    if "paths" not in shape:
        return DynamicTree(shape["speculative_tokens"], shape["expansion_factor"], shape["depth"])
    problems = path_problems(shape["paths"])
    if problems:
        raise Refused("refused.tree", "static tree refused (spec/trees.md#TRE-2): " + "; ".join(problems))
    return StaticTree(tuple(tuple(path) for path in shape["paths"]))


def static_parents(shape: StaticTree) -> list[int]:
    """Each node's parent in node order (the root's is -1). Spec: spec/trees.md#TRE-2"""
    ordered = sorted(shape.paths, key=node_order)
    index = {(): 0, **{path: i + 1 for i, path in enumerate(ordered)}}
    return [-1] + [index[path[:-1]] for path in ordered]


def tree_of(x: Tensors) -> Tree:
    return Tree(x["parents"].tolist(), x["tokens"].tolist(), x.get("q"))


def path_verdict(result) -> Tensors:
    return {"path": torch.tensor(result.path, dtype=torch.long), "next_token": torch.tensor([result.next_token])}


def run_tree_attention(model: Model, params: dict, x: Tensors) -> Tensors:
    parents = static_parents(tree_shape(params))
    positions, mask = tree_step.attention(Tree(parents, [0] * len(parents)), params["n"])
    return {"parents": torch.tensor(parents), "positions": positions, "mask": mask}


def run_propose_tree(model: Model, params: dict, x: Tensors) -> Tensors:
    model.draft.reset()
    tree = tree_step.propose(model.draft, context(x), tree_shape(params), Picker(), model.verifier.vocab_size)
    return {"parents": torch.tensor(tree.parents), "tokens": torch.tensor(tree.tokens)}


def run_verify_tree_greedy(model: Model, params: dict, x: Tensors) -> Tensors:
    return path_verdict(verify_tree_greedy(tree_of(x), x["target_logits"]))


def run_verify_tree_sampling(model: Model, params: dict, x: Tensors) -> Tensors:
    return path_verdict(verify_tree_sampling(tree_of(x), x["p"], x["uniforms"], float(x["final_uniform"][0])))


def run_generate_tree(model: Model, params: dict, x: Tensors) -> Tensors:
    """Greedy decoding with a tree; `verifier_accept_k` above 1 (absent: the proposal method's default) is refused.
    Spec: spec/trees.md#TRE-7"""
    shape = tree_shape(params)
    accept_k = {"verifier_accept_k": params["verifier_accept_k"]} if "verifier_accept_k" in params else {}
    proposal = Proposal("greedy", shape.depth, **accept_k)
    return generation(generate(model.verifier, model.draft, x["prompt_ids"].tolist(), params["max_new_tokens"],
                               proposal, shape=shape))


Operation = Callable[[Model, dict, Tensors], Tensors]
OPERATIONS: dict[str, Operation] = {
    "verifier_forward": verifier_forward,
    "propose": propose,
    "draft_forward": draft_forward,
    "verify_greedy": run_verify_greedy,
    "verify_sampling": run_verify_sampling,
    "verify_top_k": run_verify_top_k,
    "process_logits": run_process_logits,
    "generate": run_generate,
    "tree_attention": run_tree_attention,
    "propose_tree": run_propose_tree,
    "verify_tree_greedy": run_verify_tree_greedy,
    "verify_tree_sampling": run_verify_tree_sampling,
    "generate_tree": run_generate_tree,
}


def hello(message: dict) -> dict:
    return {"protocol": PROTOCOL,
            "implementation": {"name": "specfmt-reference", "version": __version__,
                               "language": "python"},
            "supports": {"levels": ["schema", "checkpoint", "numerics"], "profiles": ["compat", "strict"],
                         "operations": sorted(OPERATIONS)}}


def findings_of(report, root: str | None = None) -> list[dict]:
    """The findings as the protocol states them; a `file` that is the checkpoint directory itself (io.not_found)
    is "." (PROTOCOL.md 3.2: relative to the checkpoint directory)."""
    def file_of(f) -> str:
        return "." if root is not None and Path(f.file) == Path(root) else f.file
    return [{"code": f.code, "pointer": f.pointer, "severity": f.severity, "file": file_of(f)} for f in report.findings]


def load(message: dict) -> Model:
    """The verifier and the draft bound to it, in float32 on the CPU (the goldens' options)."""
    verifier = Verifier.from_pretrained(message["verifier_dir"]) if message.get("verifier_dir") else None
    draft = (load_draft(message["checkpoint_dir"], verifier, verifier_dir=message.get("verifier_dir"))[0]
             if message.get("checkpoint_dir") else None)  # a draft made for another verifier: BindingError
    return Model(verifier, draft)


def run(message: dict, operations: dict[str, Operation]) -> dict:
    outputs = operations[message["operation"]](HANDLES[message["handle"]], message["params"],
                                               load_file(message["inputs"]))
    write_tensors(message["outputs"], {name: t.detach().cpu().contiguous() for name, t in outputs.items()})
    return {"seq": message["seq"], "ok": True}


def handle(message: dict, operations: dict[str, Operation] = OPERATIONS) -> dict:
    """One request -> one response (PROTOCOL.md)."""
    cmd = message.get("cmd")
    if cmd == "hello":
        return hello(message)
    if cmd == "validate":
        if "document" in message:
            report = validate_config(message["document"], message["profile"])
            return {"seq": message["seq"], "findings": [{k: v for k, v in f.items() if k != "file"}
                                                        for f in findings_of(report)]}
        report = validate(message["checkpoint_dir"], message["profile"], scan_values=message.get("scan_values", False))
        return {"seq": message["seq"], "findings": findings_of(report, message["checkpoint_dir"])}
    if cmd == "load":
        handle_id = f"h{message['seq']}"
        HANDLES[handle_id] = load(message)
        return {"seq": message["seq"], "handle": handle_id}
    if cmd == "run":
        return run(message, operations)
    if cmd == "unload":
        HANDLES.pop(message["handle"], None)
        return {"seq": message["seq"], "ok": True}
    return {"seq": message.get("seq"), "error": {"message": f"unsupported command {cmd!r}"}}


def with_operations(**replaced: Operation) -> Callable[[dict], dict]:
    """`handle` with some numerics operations replaced (the broken adapters' defects)."""
    return partial(handle, operations={**OPERATIONS, **replaced})


def serve(transform: Transform | None = None, handler: Callable[[dict], dict] = handle) -> None:
    """Serve `handler` over the protocol's JSON lines; `transform` damages each response (broken adapters)."""
    if transform is None:
        jsonlines.serve(handler)
    else:
        jsonlines.serve(lambda message: transform(message, handler(message)))


def main() -> int:
    serve()
    return 0


if __name__ == "__main__":
    main()
