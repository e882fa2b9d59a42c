"""specfmt export: what an engine needs to serve a strict checkpoint, and the command that serves it.

vllm: vLLM 0.32 reads the speculators format itself, so the export is the checkpoint as it is (copied), served with
the method and the number of speculative tokens stated in --speculative-config. sglang: SGLang serves EAGLE-3 drafts
in the SafeAILab/SpecForge form (LlamaForCausalLMEagle3, midlayer.*, aux ids counting layer outputs); what that form
cannot carry, or what SGLang would silently compute otherwise, is refused, never written; a refusal proposes only
the engines that serve the algorithm. Every export is published through specfmt.publish (never at, inside or above
the source). Facts: vLLM 0.32's speculators config reader; SGLang's LlamaForCausalLMEagle3 (engines.md §1, §4).
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from specfmt.convert.common import Decision, Refusal, Refused, layer_config, read_json, renamed
from specfmt.convert.upgrade import weight_files
from specfmt.findings import ValidationError
from specfmt.publish import check_out, looks_like_checkpoint, publish
from specfmt.validate import CONFIG, validate

VLLM_METHODS = {"eagle3": {"method": "eagle3"}, "peagle": {"method": "eagle3", "parallel_drafting": True},
                "dflash": {"method": "dflash"}, "dspark": {"method": "dspark"}}  # vLLM 0.32's speculators types
SERVES = {"vllm": tuple(VLLM_METHODS), "sglang": ("eagle3",)}  # the algorithms each engine serves
EMBED = "model.embed_tokens.weight"


@dataclass
class Export:
    """An export written: where, what was decided, and the command that serves it."""

    out: Path
    decisions: list[Decision]
    command: str


def export(source: Path, engine: str, out: Path, verifier: Path | None = None, overwrite: bool = False) -> Export:
    """Export the strict checkpoint at `source` for `engine` (ENGINES) into `out`; Refused when the engine cannot
    serve it as written, ValidationError when the source is not strict."""
    report = validate(source, "strict")
    if report.errors:
        raise ValidationError(report.errors)
    inputs = [source, *([verifier] if verifier else [])]  # never write at, inside or above the verifier either
    check_out(out, protect=inputs, overwrite=overwrite, kind_check=looks_like_checkpoint)
    return ENGINES[engine](source, read_json(source / CONFIG), out, verifier, overwrite)


def instead(algorithm: str, engine: str) -> str:
    """The flag of each other engine that serves `algorithm`, or that none does."""
    others = [f"--for {e}" for e, algorithms in SERVES.items() if e != engine and algorithm in algorithms]
    return " or ".join(others) + f" (it serves {algorithm})" if others else \
        f"no flag: no export target serves {algorithm} (serve it with the specfmt runtime)"


def default_k(config: dict) -> int:
    sc = config["speculators_config"]
    method = next(m for m in sc["proposal_methods"] if m["proposal_type"] == sc["default_proposal_method"])
    return method["speculative_tokens"]


def to_vllm(source: Path, config: dict, out: Path, verifier: Path | None, overwrite: bool = False) -> Export:
    """The checkpoint copied as it is, and `vllm serve VERIFIER --speculative-config {...}`."""
    algorithm = config["speculators_model_type"]
    if algorithm not in VLLM_METHODS:
        raise Refused([Refusal(f"{source}/{CONFIG}", "/speculators_model_type", f"vLLM 0.32 reads the speculators "
                               f"types {json.dumps(sorted(VLLM_METHODS))}; found {json.dumps(algorithm)}",
                               instead(algorithm, "vllm"))])
    written(out, {name: source / name for name in [CONFIG, *weight_files(source)]}, source, overwrite)
    spec = {"model": str(out.resolve()), **VLLM_METHODS[algorithm], "num_speculative_tokens": default_k(config)}
    verifier_name = config["speculators_config"]["verifier"]["name_or_path"]
    command = f"vllm serve {shlex.quote(verifier_name)} --speculative-config {shlex.quote(json.dumps(spec))}"
    return Export(out, [], command)


def to_sglang(source: Path, config: dict, out: Path, verifier: Path | None, overwrite: bool = False) -> Export:
    """The SafeAILab/SpecForge form of an eagle3 draft SGLang can serve as the spec computes it, and
    `python -m sglang.launch_server ... --speculative-algorithm EAGLE3`."""
    from safetensors.torch import save

    from specfmt.checkpoint import load

    refusals, decisions = sglang_refusals(source, config), []
    if config["speculators_model_type"] == "eagle3":
        tensors = renamed(load(source)[1], [(r"layers\.0\.(.+)", r"midlayer.\1")], decisions)
        problem = shared_embedding(config, tensors, verifier, decisions)
        if problem:
            refusals.append(Refusal(f"{source}/model.safetensors", "/embed_tokens.weight", problem,
                                    "--verifier PATH (the verifier whose embedding the draft carries)"))
    if refusals:
        raise Refused(refusals)
    files = {CONFIG: (json.dumps(sglang_config(config, decisions), indent=2) + "\n").encode(),
             "model.safetensors": save({k: v.contiguous() for k, v in tensors.items()}, {"format": "pt"})}
    written(out, files, source, overwrite)
    k = default_k(config)
    verifier_name = config["speculators_config"]["verifier"]["name_or_path"]
    command = (f"python -m sglang.launch_server --model-path {shlex.quote(verifier_name)} --speculative-algorithm "
               f"EAGLE3 --speculative-draft-model-path {shlex.quote(str(out.resolve()))} --speculative-num-steps {k} "
               f"--speculative-eagle-topk 1 --speculative-num-draft-tokens {k + 1}")
    return Export(out, decisions, command)


def sglang_refusals(source: Path, config: dict) -> list[Refusal]:
    """What SGLang's LlamaForCausalLMEagle3 cannot compute as the spec does (engines.md §4: a Llama layer with no
    attention bias, one layer, fc over exactly 3 aux states, residual before hidden_norm, no norm before fc, the
    pre-norm state fed back, aux ids read with +1 by every SGLang version only when the first is 1)."""
    at, layer = f"{source}/{CONFIG}", config.get("transformer_layer_config", {})
    if config["speculators_model_type"] != "eagle3":
        return [Refusal(at, "/speculators_model_type", f"SGLang serves eagle3 drafts in this form; found "
                        f"{json.dumps(config['speculators_model_type'])}",
                        instead(config["speculators_model_type"], "sglang"))]
    ids, n = config["eagle_aux_hidden_state_layer_ids"], config["speculators_config"]["verifier"]["num_hidden_layers"]
    checks = [
        ("/transformer_layer_config/model_type", layer["model_type"] == "llama", "SGLang builds Llama layers only "
         "(no q_norm/k_norm, no qkv bias)"),
        ("/transformer_layer_config/attention_bias", not layer.get("attention_bias"), "SGLang's layer-0 q/k/v "
         "projections carry no bias"),
        ("/transformer_layer_config/num_hidden_layers", layer["num_hidden_layers"] == 1, "SGLang's further layers "
         "norm with hidden_norm and drop the residual stream"),
        ("/eagle_aux_hidden_state_layer_ids", len(ids) == 3, "SGLang sizes fc for exactly 3 aux states"),
        ("/eagle_aux_hidden_state_layer_ids", ids[0] == 2, "SGLang adds 1 to an explicit first id of 1 only "
         "(sglang#25454; earlier versions add 1 to every id), so only lists starting at CFG-9 id 2 mean the same "
         "states in every version"),
        ("/eagle_aux_hidden_state_layer_ids", max(ids) < n, f"SGLang captures layer inputs 0..{n - 1}; id {n} "
         "(the last layer's output) is never captured"),
        ("/norm_before_residual", not config["norm_before_residual"], "SGLang takes the residual before hidden_norm"),
        ("/norm_before_fc", not config["norm_before_fc"], "SGLang ignores norm_before_fc and input_norm.weight"),
        ("/fc_norm", not config["fc_norm"], "SGLang ignores fc_norm and fc_norm.{a}.weight"),
        ("/norm_output", not config["norm_output"], "SGLang feeds the pre-norm state back"),
    ]
    return [Refusal(at, pointer, f"{json.dumps(value_at(config, pointer))} cannot be served: {why}",
                    instead("eagle3", "sglang")) for pointer, ok, why in checks if not ok]


def value_at(config: dict, pointer: str):
    node = config
    for part in pointer.split("/")[1:]:
        node = node[part]
    return node


def shared_embedding(config: dict, tensors: dict, verifier: Path | None, decisions: list[Decision]) -> str | None:
    """SGLang replaces an EAGLE-3 draft's embedding with the verifier's whenever their widths match: a stored
    embed_tokens goes when it is the verifier's, and is a problem (the returned text) when it may not be."""
    width = config["target_hidden_size"]
    if "embed_tokens.weight" not in tensors or width not in (None, config["transformer_layer_config"]["hidden_size"]):
        return None
    if verifier is None:
        return "the draft stores embed_tokens and SGLang uses the verifier's instead; give the verifier's " \
               "directory with its weights to show they are the same"
    theirs, mine = verifier_embedding(verifier), tensors["embed_tokens.weight"]
    if theirs is None:
        return f"nothing was compared: {verifier} holds no {EMBED} in a safetensors file (a config.json alone " \
               "cannot show that the draft's embed_tokens is the verifier's, which SGLang would use instead)"
    if theirs.shape != mine.shape:
        return f"the draft's embed_tokens is {list(mine.shape)}, the verifier's {EMBED} at {verifier} is " \
               f"{list(theirs.shape)}; SGLang would use the verifier's instead"
    if not theirs.to(mine.dtype).equal(mine):
        return f"the draft's embed_tokens differs from the verifier's {EMBED} at {verifier} (both " \
               f"{list(mine.shape)}, compared value by value in {str(mine.dtype).removeprefix('torch.')}), which " \
               "SGLang would use instead"
    del tensors["embed_tokens.weight"]
    decisions.append(Decision("dropped", "embed_tokens.weight", f"equal to the verifier's ({verifier}), which "
                              "SGLang uses in its place"))
    return None


def verifier_embedding(path: Path):
    """The verifier's model.embed_tokens.weight, read from whichever safetensors file of its directory (`path`, or
    the directory of its config.json) holds it; None when none does."""
    from specfmt import files

    directory = path if path.is_dir() else path.parent
    for f in sorted(directory.glob("*.safetensors")):
        try:  # the one reader: a FIFO or a device is refused, a header checked before its data
            if EMBED in files.stored_names(f, f):
                return files.read_safetensors(f, f, names={EMBED})[EMBED]
        except files.FileRefused as e:
            raise Refused([Refusal(str(f), e.finding.pointer, e.finding.message, "--verifier DIR",
                                   e.finding.code)]) from None
    return None


def sglang_config(config: dict, decisions: list[Decision]) -> dict:
    """A LlamaConfig with SGLang's EAGLE-3 keys; the aux ids in SGLang's numbering (the output of layer X)."""
    layer, ids = config["transformer_layer_config"], config["eagle_aux_hidden_state_layer_ids"]
    out = {"architectures": ["LlamaForCausalLMEagle3"], **layer_config(layer),
           "tie_word_embeddings": False, "draft_vocab_size": config["draft_vocab_size"],
           "torch_dtype": config["dtype"],
           "eagle_config": {"eagle_aux_hidden_state_layer_ids": [i - 1 for i in ids], "use_aux_hidden_state": True}}
    if config["target_hidden_size"] is not None:
        out["target_hidden_size"] = config["target_hidden_size"]
    decisions.append(Decision("translated", "eagle_aux_hidden_state_layer_ids", f"{ids} -> eagle_config "
                              f"{[i - 1 for i in ids]}: SGLang counts the output of layer X and adds 1"))
    return out


def written(out: Path, files: dict[str, bytes | Path], source: Path, overwrite: bool) -> None:
    """`files` (bytes, or a file to copy) published at `out` (specfmt.publish: staged beside, renamed into place)."""

    def write(staging: Path) -> None:
        for name, data in files.items():
            if isinstance(data, Path):
                shutil.copyfile(data, staging / name)
            else:
                (staging / name).write_bytes(data)

    publish(out, write, protect=[source], overwrite=overwrite, kind_check=looks_like_checkpoint)


ENGINES = {"vllm": to_vllm, "sglang": to_sglang}
