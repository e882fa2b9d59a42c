"""specfmt convert --from mtp: the native multi-token-prediction layer inside a verifier checkpoint as a strict mtp
draft. Only the shards that hold MTP tensors are read.

Three naming families (other-formats.md section 7): MiMo `model.mtp_layers.{i}.*` (its input_proj reads
[hidden, embedding]); DeepSeek-V3 `model.layers.{N+i}.{enorm,hnorm,eh_proj,shared_head.*,embed_tokens,...}`; Qwen3-Next
and Qwen3.5 `mtp.{fc,pre_fc_norm_embedding,pre_fc_norm_hidden,norm,layers.{i}.*}`, whose norms are zero-centred
(scale 1 + w). v1 mtp runs one dense llama, qwen2 or qwen3 layer; MLA and mixture-of-experts layers are refused.

Every family's layer was trained on the verifier state after its final norm (vLLM and MiMo feed the base model's
output), so the draft states `verifier_hidden_state: post_norm` (ALG-MTP-5); `--set verifier_hidden_state=pre_norm`
overrides it, for a layer fine-tuned since on the state before the norm.
Spec: spec/algorithms/mtp.md
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from specfmt.convert.common import (
    INDEX,
    Conversion,
    Decision,
    Refusal,
    Source,
    SourceError,
    VerifierFacts,
    finish,
    read_json,
    read_tensors,
    renamed,
)
from specfmt.envelope import envelope

CONFIG = "config.json"
FAMILY_OF = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "mimo": "qwen2"}  # MiMoConfig is a Qwen2Config
COUNT_KEYS = ("num_nextn_predict_layers", "mtp_num_hidden_layers")  # Qwen3.5 uses the second
LAYER = r"(input_layernorm|post_attention_layernorm|self_attn\.\w+|mlp\.\w+)\.(weight|bias)"
NORMS = r"mtp_layers\.0\.(\w+_layernorm|self_attn\.[qk]_norm)\.weight"
NOT_DENSE = {  # config keys of layers v1 cannot run, and what they mean
    "kv_lora_rank": "MLA attention", "q_lora_rank": "MLA attention", "n_routed_experts": "a mixture-of-experts MLP",
    "num_experts": "a mixture-of-experts MLP", "num_local_experts": "a mixture-of-experts MLP",
    "attn_output_gate": "a gated attention output", "linear_num_value_heads": "linear-attention verifier layers",
    "quantization_config": "quantized weights"}


def families(n: int) -> dict[str, dict]:
    """Each naming family: its MTP tensor names (group 1: the MTP layer index, counted from 0, or from N for
    DeepSeek), the renames of its first layer into v1's `mtp_layers.0.*`, what is dropped (copies of the verifier's
    own tensors) and its conventions."""
    ds = rf"model\.layers\.{n}\."
    return {
        "mimo": {"match": r"model\.mtp_layers\.(\d+)\..*", "first": 0, "rules": [
            (r"model\.mtp_layers\.0\.(.*)", r"mtp_layers.0.\1")], "drop": (), "hidden_first": True,
            "zero_centred": False},
        "deepseek": {"match": r"model\.layers\.(\d+)\.(enorm|hnorm|eh_proj|shared_head|embed_tokens|input_layernorm|"
                     r"post_attention_layernorm|self_attn|mlp)\..*", "first": n, "rules": [
            (ds + r"enorm\.weight", "mtp_layers.0.token_layernorm.weight"),
            (ds + r"hnorm\.weight", "mtp_layers.0.hidden_layernorm.weight"),
            (ds + r"eh_proj\.weight", "mtp_layers.0.input_proj.weight"),
            (ds + r"shared_head\.norm\.weight", "mtp_layers.0.final_layernorm.weight"),
            (ds + LAYER, r"mtp_layers.0.\1.\2")],
            "drop": (ds + r"embed_tokens\.weight", ds + r"shared_head\.head\.weight"), "hidden_first": False,
            "zero_centred": False},
        "qwen3_next": {"match": r"mtp\.(?:layers\.(\d+)\.)?.*", "first": 0, "rules": [
            (r"mtp\.fc\.weight", "mtp_layers.0.input_proj.weight"),
            (r"mtp\.pre_fc_norm_embedding\.weight", "mtp_layers.0.token_layernorm.weight"),
            (r"mtp\.pre_fc_norm_hidden\.weight", "mtp_layers.0.hidden_layernorm.weight"),
            (r"mtp\.norm\.weight", "mtp_layers.0.final_layernorm.weight"),
            (r"mtp\.layers\.0\.(.*)", r"mtp_layers.0.\1")], "drop": (), "hidden_first": False,
            "zero_centred": True},
    }


def mtp_layer(name: str, n: int, fam: dict) -> int | None:
    """The MTP layer a tensor of the family belongs to (0 for the first), or None when it is not an MTP tensor."""
    m = re.fullmatch(fam["match"], name)
    if m is None:
        return None
    index = int(m[1]) - fam["first"] if m[1] is not None else 0
    return index if index >= 0 else None  # DeepSeek's layers below N are the verifier's


def text_config(config: dict) -> dict:
    return config.get("text_config", config) if "hidden_size" not in config else config


def read_source(path: Path, only: tuple[str, ...] = ()) -> Source:
    """The verifier checkpoint's config and its MTP tensors only, read from the shards that hold them (and, for the
    DeepSeek family, the verifier's embedding and LM head, which its MTP layer stores copies of)."""
    from specfmt import files
    from specfmt.reader_facts import check_reader_facts

    if not (path / CONFIG).exists():
        raise SourceError(f"{path}: the verifier checkpoint has no config.json")
    config = read_json(path / CONFIG)
    try:  # through the one reader (specfmt.files): shards inside the directory, regular files, checked headers
        if not isinstance(config, dict):
            raise files.not_object(path / CONFIG, "", config)
        if (path / INDEX).exists():
            where = {k: p.name for k, p in files.index_shards(path, read_json(path / INDEX), path / INDEX).items()}
        else:
            found = [f for f in sorted(path.glob("*.safetensors")) if not only or f.name in only]
            where = {k: f.name for f in found for k in files.stored_names(f, f)}
        check_reader_facts(config, str(path / CONFIG), len(where) or None)
        n = text_config(config).get("num_hidden_layers", -1)
        if not where:  # .bin/.pt checkpoints: read whole, with weights_only=True
            tensors, names = read_tensors(path, only)
            return Source(path, config, {k: t for k, t in tensors.items() if is_mtp(k, n, tensors)}, names)
        mtp = {k for k in where if is_mtp(k, n, where)}
        tensors: dict = {}
        for shard in sorted({where[k] for k in mtp}):
            tensors.update(files.read_safetensors(path / shard, path / shard, names=mtp))
    except files.FileRefused as e:
        raise SourceError(str(e)) from None
    return Source(path, config, tensors, sorted({where[k] for k in mtp}))


def is_mtp(name: str, n: int, all_names) -> bool:
    """An MTP tensor of any family; the verifier's embedding and LM head when DeepSeek-style copies need comparing."""
    if any(mtp_layer(name, n, fam) is not None for fam in families(n).values()):
        return True
    copies = any(re.fullmatch(rf"model\.layers\.{n}\.(embed_tokens|shared_head\.head)\.weight", k) for k in all_names)
    return copies and name in ("model.embed_tokens.weight", "lm_head.weight")


def family_of(source: Source, n: int) -> tuple[str, dict, dict[str, int]]:
    """The naming family the MTP tensors follow, and the MTP layer of each of its tensors."""
    for name, fam in families(n).items():
        layers = {k: i for k in source.tensors if (i := mtp_layer(k, n, fam)) is not None}
        if layers:
            return name, fam, layers
    raise SourceError(f"{source.path}: no MTP tensors (model.mtp_layers.*, model.layers.{n}.eh_proj, mtp.*) in "
                      f"the checkpoint")


def layer_config(cfg: dict, where: str, refusals: list[Refusal], decisions: list[Decision]) -> dict:
    """transformer_layer_config: the verifier's own config, its model_type as a v1 family."""
    layer = {k: v for k, v in cfg.items() if k != "auto_map"}
    if "auto_map" in cfg:
        decisions.append(Decision("dropped", "transformer_layer_config.auto_map", "the verifier's model code, "
                                  "never run"))
    found = sorted({what for key, what in NOT_DENSE.items() if cfg.get(key)})
    family = FAMILY_OF.get(cfg.get("model_type"))
    if found or family is None:
        what = ", ".join(found) or "a decoder layer of another family"
        refusals.append(Refusal(where, "/model_type", f"model_type {json.dumps(cfg.get('model_type'))}: its MTP "
                                f"layer has {what}; the v1 mtp layout runs one dense llama, qwen2 or qwen3 layer "
                                "(ALG-MTP-1)",
                                "a dense llama, qwen2 or qwen3 verifier (no flag converts this one)",
                                "convert.unsupported"))
    elif family != cfg["model_type"]:
        layer["model_type"] = family
        decisions.append(Decision("translated", "transformer_layer_config.model_type", f"{cfg['model_type']} -> "
                                  f"{family}: its decoder layer is {family}'s"))
    return layer


def checked_copies(source: Source, n: int, where: str, refusals: list[Refusal]) -> None:
    """A family that stores its own embedding or LM head (DeepSeek) must store the verifier's: v1 reads those."""
    lm_head = source.tensors.get("lm_head.weight", source.tensors.get("model.embed_tokens.weight"))
    for name, verifiers in ((f"model.layers.{n}.embed_tokens.weight", source.tensors.get("model.embed_tokens.weight")),
                            (f"model.layers.{n}.shared_head.head.weight", lm_head)):
        if name in source.tensors and (verifiers is None or not torch.equal(source.tensors[name], verifiers)):
            refusals.append(Refusal(f"{where}#{name}", "", "the MTP layer's copy differs from the verifier's own "
                                    "tensor, and v1 mtp reads the verifier's (ALG-MTP-3)", "a checkpoint whose copies "
                                    "equal the verifier's (no flag converts this one)", "convert.unsupported"))


def computed(tensors: dict, fam: dict, h: int, decisions: list[Decision]) -> dict:
    """The exact weight changes: MiMo's [hidden, embedding] input columns reordered, zero-centred norms made plain
    (1 + w, in float32 so that no rounding enters)."""
    out = dict(tensors)
    w = out.get("mtp_layers.0.input_proj.weight")
    if fam["hidden_first"] and w is not None:
        out["mtp_layers.0.input_proj.weight"] = torch.cat([w[:, h:], w[:, :h]], 1)  # [H, 2H]: embedding first
        decisions.append(Decision("computed", "mtp_layers.0.input_proj.weight", "columns [hidden | embedding] "
                                  "reordered to [embedding | hidden], the order v1 concatenates (a permutation)"))
    if fam["zero_centred"]:
        out = {k: t.float() for k, t in out.items()}
        norms = [k for k in out if re.fullmatch(NORMS, k)]
        out.update({k: out[k] + 1 for k in norms})
        decisions.append(Decision("computed", NORMS, f"{len(norms)} zero-centred norm weights w (scale 1 + w) "
                                  "written as plain RMSNorm weights 1 + w; every tensor widened to float32 (exact)"))
    return out


def one_layer(source: Source, fam: dict, layers: dict[str, int], given: dict, where: str, refusals: list[Refusal],
              decisions: list[Decision]) -> dict:
    """The first MTP layer's tensors; later layers are refused until --set num_nextn_predict_layers=1 keeps one."""
    cfg = text_config(source.config)
    count = max([cfg[k] for k in COUNT_KEYS if k in cfg] + [max(layers.values()) + 1])
    if count > 1 and given.get("num_nextn_predict_layers") != 1:
        refusals.append(Refusal(where, "/num_nextn_predict_layers", f"{count} MTP layers; the v1 layout defines "
                                "one, and engines run layer s mod n at step s",
                                "--set num_nextn_predict_layers=1 (keep the first layer for every step)"))
    later = [k for k, i in layers.items() if i > 0]
    if later:
        decisions.append(Decision("dropped", "MTP layers after the first", f"{len(later)} tensors (the v1 layout keeps "
                                  "one layer)"))
    return {k: source.tensors[k] for k, i in layers.items() if i == 0}


def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict mtp config and tensors of a verifier checkpoint's MTP layer. Spec: spec/algorithms/mtp.md"""
    if source.config is None:
        raise SourceError(f"{source.path}: the verifier checkpoint has no config.json")
    cfg, where, decisions, refusals = text_config(source.config), f"{source.path}/{CONFIG}", [], []
    n = cfg.get("num_hidden_layers")
    name, fam, layers = family_of(source, n)
    layer = layer_config(cfg, where, refusals, decisions)
    mismatched = [k for k in ("hidden_size", "num_hidden_layers", "vocab_size") if cfg.get(k) != verifier.config[k]]
    if mismatched:
        refusals.append(Refusal(where, f"/{mismatched[0]}", f"{json.dumps(mismatched)} differ from --verifier's: "
                                "the MTP layer belongs to this checkpoint's own verifier",
                                "--verifier PATH (this checkpoint)"))
    checked_copies(source, n, where, refusals)
    tensors = renamed(one_layer(source, fam, layers, given, where, refusals, decisions), fam["rules"], decisions,
                      fam["drop"])
    stray = sorted(k for k in tensors if not k.startswith("mtp_layers.0."))
    if stray:
        refusals.append(Refusal(f"{where}#{stray[0]}", "", f"MTP tensors {json.dumps(stray)} have no place in the "
                                "mtp layout", "a checkpoint without them (no flag converts this one)",
                                "convert.unsupported"))
    tensors = computed(tensors, fam, layer["hidden_size"], decisions)
    if "verifier_hidden_state" not in given:  # a --set value is recorded as given by finish
        decisions.append(Decision("default", "verifier_hidden_state", f"post_norm: the {name} MTP layer reads the "
                                  "verifier state after its final norm, as vLLM's native MTP feeds it"))
    dtypes = {str(t.dtype).removeprefix("torch.") for t in tensors.values()}
    config = envelope("mtp", verifier.config, verifier.name, 1, min(dtypes), transformer_layer_config=layer,
                      num_nextn_predict_layers=1, verifier_hidden_state="post_norm")
    decisions.append(Decision("default", "speculators_config.proposal_methods[0].speculative_tokens", "1: one step "
                              "per MTP layer, vLLM's default num_speculative_tokens for native MTP"))
    if len(dtypes) != 1:
        raise SourceError(f"{source.path}: expected the MTP tensors in one float dtype, found "
                          f"{json.dumps(sorted(dtypes))}")
    return finish(config, tensors, decisions, given, str(source.path), verifier, refusals)
