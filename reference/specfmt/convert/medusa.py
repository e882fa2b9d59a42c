"""--from medusa: FasterDecoding Medusa heads in each of their on-disk forms as a strict `medusa` checkpoint.

The forms: v0.1 heads-only medusa_lm_head.pt (a state dict, read with weights_only=True) or medusa_lm_head.safetensors,
named {k}.{l}.linear.{weight,bias} for the L residual blocks of head k and {k}.{L}.weight for its output matrix; the
legacy trainer's "version 2" files, whose heads have no output matrix and read the base lm_head; Medusa 1.0 full
model directories, whose heads are prefixed medusa_head. beside the base model's tensors; and ModelOpt's combined
files with the prefix medusa_heads. config.json keys: medusa_num_heads, medusa_num_layers, base_model_name_or_path,
version. Upstream: FasterDecoding/Medusa medusa/model/medusa_model.py (ResBlock, heads built from [ResBlock] * L),
medusa_model_legacy.py (version 2), train/train_legacy.py. Spec: spec/algorithms/medusa.md
"""

from __future__ import annotations

import json
import re

import torch

from specfmt.convert.common import (
    Conversion,
    Decision,
    Refusal,
    Source,
    SourceError,
    VerifierFacts,
    finish,
    float_dtype,
    renamed,
    some_names,
)
from specfmt.envelope import envelope

PREFIXES = {"medusa_head.": "a Medusa 1.0 full model", "medusa_heads.": "a ModelOpt combined checkpoint"}
BLOCK = re.compile(r"(\d+)\.(\d+)\.linear\.(weight|bias)")
OUTPUT = re.compile(r"(\d+)\.(\d+)\.weight")
RULES = [(r"(\d+)\.(\d+)\.linear\.(weight|bias)", r"blocks.\1.layers.\2.\3"),
         (r"(\d+)\.\d+\.weight", r"lm_heads.\1.weight")]
DEFAULT_LAYERS = 1  # MedusaConfig's medusa_num_layers when config.json leaves it out


def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict `medusa` checkpoint of FasterDecoding heads. Spec: spec/algorithms/medusa.md"""
    cfg, where, decisions, refusals = source.config or {}, f"{source.path}/config.json", [], []
    heads = heads_only(source, decisions)
    blocks, outputs = parse(heads, source)
    num_heads = head_count(blocks, cfg, given, heads, decisions)
    num_layers = layer_count(blocks, outputs, cfg, decisions)
    shared_blocks(heads, num_heads, num_layers, decisions, source)
    fc_bias = block_bias(heads, num_heads, num_layers, decisions, source)
    original = output_heads(heads, outputs, num_heads, cfg, given, where, decisions, refusals)
    check_verifier(heads, verifier, source, refusals)
    decisions.append(Decision("default", "speculators_config.proposal_methods[0].speculative_tokens",
                              f"{num_heads}: one token per head (head k predicts the token k + 2 positions ahead)"))
    config = envelope("medusa", verifier.config, verifier.name, num_heads, float_dtype(heads, str(source.path)),
                      medusa_num_heads=num_heads, medusa_num_layers=num_layers, medusa_fc_bias=fc_bias,
                      original_lm_head=original)
    tensors = renamed(heads, RULES, decisions)
    return finish(config, tensors, decisions, given, str(source.path), verifier, refusals)


def heads_only(source: Source, decisions: list) -> dict:
    """The head tensors under their FasterDecoding names: a full model's prefix stripped and its base tensors
    dropped (the draft binds to --verifier); anything else is refused."""
    tensors = source.tensors
    prefix = next((p for p in PREFIXES if any(n.startswith(p) for n in tensors)), "")
    heads = {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}
    if prefix:
        base = len(tensors) - len(heads)
        decisions.append(Decision("renamed", f"{prefix}*", f"the prefix of {PREFIXES[prefix]} stripped "
                                  f"({len(heads)} tensors)"))
        if base:
            decisions.append(Decision("dropped", "the base model's tensors", f"{base} tensors; the draft binds to "
                                      "--verifier (a Medusa-2 full model fine-tuned its base: pass this directory "
                                      "as --verifier to keep it)"))
    quantized = sorted(n for n in heads if n.endswith(("input_scale", "weight_scale")))
    if quantized:
        raise SourceError(f"{source.path}: {quantized[0]} belongs to quantized heads; v1 medusa stores float "
                          "weights, so dequantize them first")
    unknown = sorted(n for n in heads if not (BLOCK.fullmatch(n) or OUTPUT.fullmatch(n)))
    if unknown:
        raise SourceError(f"{source.path}: {some_names(unknown)} are not Medusa head tensors; expected "
                          "{k}.{l}.linear.weight, {k}.{l}.linear.bias and {k}.{L}.weight")
    return heads


def parse(heads: dict, source: Source) -> tuple[dict[int, set[int]], dict[int, int]]:
    """The block indices of each head, and the index of each head's output matrix."""
    blocks: dict[int, set[int]] = {}
    outputs: dict[int, int] = {}
    for name in heads:
        if m := BLOCK.fullmatch(name):
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
        elif m := OUTPUT.fullmatch(name):
            outputs[int(m[1])] = int(m[2])
    if sorted(blocks) != list(range(len(blocks))) or not blocks or not set(outputs) <= set(blocks):
        raise SourceError(f"{source.path}: expected heads 0..K-1 each with residual blocks; found blocks of heads "
                          f"{sorted(blocks)} and output matrices of heads {sorted(outputs)}")
    return blocks, outputs


def head_count(blocks: dict, cfg: dict, given: dict, heads: dict, decisions: list) -> int:
    """K counted from the tensors (released configs under-count: the 7B config says 2); --set
    medusa_num_heads=M keeps heads 0..M-1."""
    counted, stated = len(blocks), cfg.get("medusa_num_heads")
    if stated != counted:
        decisions.append(Decision("translated", "medusa_num_heads", f"{counted}: counted from the tensors; "
                                  f"config.json says {json.dumps(stated)}"))
    wanted = given.get("medusa_num_heads", counted)
    if not isinstance(wanted, int) or not 1 <= wanted <= counted:
        raise SourceError(f"--set medusa_num_heads={json.dumps(wanted)}: the file holds {counted} heads")
    gone = [n for n in heads if int(n.split(".")[0]) >= wanted]
    for name in gone:
        del heads[name]
    if gone:
        decisions.append(Decision("dropped", f"heads {wanted}..{counted - 1}", f"{len(gone)} tensors; --set "
                                  f"medusa_num_heads={wanted}"))
    return wanted


def layer_count(blocks: dict, outputs: dict, cfg: dict, decisions: list) -> int:
    """L: the index of the output matrix ({k}.{L}.weight) when there is one, else config.json's
    medusa_num_layers (MedusaConfig's default 1 when absent), at least one more than the highest block index."""
    stated = cfg.get("medusa_num_layers")
    if stated is None:
        decisions.append(Decision("default", "medusa_num_layers", f"config.json leaves it out; MedusaConfig's "
                                  f"default is {DEFAULT_LAYERS}"))
    indices = set(outputs.values())
    if len(indices) > 1:
        raise SourceError(f"the output matrices sit at different block indices {sorted(indices)}")
    highest = max(max(b) for b in blocks.values()) + 1
    counted = indices.pop() if indices else max(highest, stated or DEFAULT_LAYERS)
    if highest > counted:
        raise SourceError(f"a residual block index {highest - 1} is at or beyond the output matrix index {counted}")
    if stated is not None and stated != counted:
        decisions.append(Decision("translated", "medusa_num_layers", f"{counted}: counted from the tensors; "
                                  f"config.json says {stated}"))
    return counted


def shared_blocks(heads: dict, num_heads: int, num_layers: int, decisions: list, source: Source) -> None:
    """FasterDecoding builds a head from [ResBlock] * L, one block object applied L times, so its L names hold
    one tensor (a deduplicating save keeps only some). v1 stores each block: equal copies fill the missing names."""
    if num_layers == 1:
        return
    filled, differ = 0, []
    for k in range(num_heads):
        for part in ("weight", "bias"):
            names = [f"{k}.{r}.linear.{part}" for r in range(num_layers)]
            present = [heads[n] for n in names if n in heads]
            if not present:
                continue
            if any(not torch.equal(present[0], t) for t in present[1:]):
                differ.append(f"{k}.*.linear.{part}")
                continue
            for name in names:
                if name not in heads:
                    heads[name] = present[0].clone()
                    filled += 1
    if differ and filled:
        raise SourceError(f"{source.path}: some heads store fewer than {num_layers} blocks and the blocks of "
                          f"{differ[0]} differ, so the missing blocks cannot be known")
    if differ:
        decisions.append(Decision("translated", "medusa_num_layers", f"the {num_layers} blocks of each head differ, "
                                  "so they were not FasterDecoding's shared block; each is kept as its own block"))
    else:
        decisions.append(Decision("computed" if filled else "translated", "{k}.{l}.linear.*",
                                  f"FasterDecoding shares one ResBlock across a head's {num_layers} blocks; stored "
                                  f"as {num_layers} equal copies" + (f" ({filled} filled in)" if filled else "")))


def block_bias(heads: dict, num_heads: int, num_layers: int, decisions: list, source: Source) -> bool:
    """medusa_fc_bias: every block has a bias (FasterDecoding always writes one), or none has."""
    biases = [f"{k}.{r}.linear.bias" in heads for k in range(num_heads) for r in range(num_layers)]
    if any(biases) and not all(biases):
        raise SourceError(f"{source.path}: some residual blocks have a bias and some do not")
    decisions.append(Decision("translated", "medusa_fc_bias", f"{json.dumps(all(biases))}: the residual blocks "
                              f"{'carry' if all(biases) else 'have no'} biases"))
    return all(biases)


def output_heads(heads: dict, outputs: dict, num_heads: int, cfg: dict, given: dict, where: str, decisions: list,
                 refusals: list) -> bool:
    """original_lm_head: no head stores an output matrix ("version 2": the heads read the base lm_head)."""
    kept = [k for k in range(num_heads) if k in outputs]
    if kept and len(kept) != num_heads:
        raise SourceError(f"{where}: heads {kept} store an output matrix and the others do not")
    if "original_lm_head" in given:
        if not given["original_lm_head"] and not kept:
            raise SourceError(f"{where}: --set original_lm_head=false, but no head stores an output matrix")
        if given["original_lm_head"]:
            for k in kept:
                del heads[f"{k}.{outputs[k]}.weight"]
            decisions.append(Decision("dropped", "{k}.{L}.weight", "--set original_lm_head=true"))
        return bool(given["original_lm_head"])
    version = cfg.get("version")
    if version == "2" and kept:
        refusals.append(Refusal(where, "/version", "version is \"2\" (heads that read the base lm_head), yet the heads "
                                "store output matrices", "--set original_lm_head=true|false"))
    decisions.append(Decision("translated", "original_lm_head", "true: no head stores an output matrix, so each reads "
                              "the verifier's lm_head (FasterDecoding version 2)" if not kept else
                              "false: each head stores its own output matrix"))
    return not kept


def check_verifier(heads: dict, verifier: VerifierFacts, source: Source, refusals: list) -> None:
    """The heads' width and vocabulary against the verifier's (the layout binds both to it)."""
    found = {"hidden_size": heads["0.0.linear.weight"].shape[-1]}
    found.update(("vocab_size", t.shape[0]) for n, t in heads.items() if OUTPUT.fullmatch(n))
    for key, value in found.items():
        if value != verifier.config[key]:
            refusals.append(Refusal(f"{source.path}/{source.files[0]}", "", f"the heads' {key} is {value}, the "
                                    f"verifier's is {verifier.config[key]}",
                                    f"--verifier PATH (a verifier with {key} {value})"))

