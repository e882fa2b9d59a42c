"""A minimal llama/qwen2/qwen3 verifier in plain torch, with a KV cache that rolls back and aux
hidden states exactly as spec/config.md#CFG-9 pins them.

It loads an ordinary Hugging Face checkpoint directory (config.json plus model.safetensors or a
sharded index). Its tensors are bound through the `independent` layout document, which declares
exactly the Hugging Face causal-LM names.
Spec: spec/verifier.md, spec/config.md#CFG-9
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from specfmt import nn
from specfmt.defaults import resolve
from specfmt.findings import Refused
from specfmt.schemas import load
from specfmt.weights import bind_roles


@dataclass
class Output:
    """One forward pass over T new positions."""

    logits: torch.Tensor  # [T, V]
    aux: torch.Tensor  # [T, A*H]: hidden_states[k] for each requested id k, concatenated in order
    last: torch.Tensor  # [T, H]: hidden_states[N], the last decoder output before the final norm
    normed: torch.Tensor  # [T, H]: after the final norm, what the LM head reads


LAYER = load("config.schema.json")["$defs"]["layer_config"]["properties"]  # the families and activation of VFR-1


def refusals(config: dict) -> list[str]:
    """What a runtime refuses in a resolved verifier config: a family or an activation v1.0 does not define
    (VFR-1), query heads that are no multiple of the key-value heads (VFR-7). Spec: spec/verifier.md#VFR-1"""
    problems = []
    if config.get("model_type") not in LAYER["model_type"]["enum"]:
        problems.append(f"model_type must be one of {LAYER['model_type']['enum']}; found {config.get('model_type')!r}")
    if config.get("hidden_act") != LAYER["hidden_act"]["const"]:
        problems.append(f"hidden_act must be {LAYER['hidden_act']['const']!r}; found {config.get('hidden_act')!r}")
    n_h, n_kv = config.get("num_attention_heads"), config.get("num_key_value_heads")
    if isinstance(n_h, int) and isinstance(n_kv, int) and (n_kv < 1 or n_h % n_kv):
        problems.append(f"num_attention_heads {n_h} must be a multiple of num_key_value_heads {n_kv} (VFR-7)")
    return problems


def resolve_layer_config(config: dict) -> dict:
    """A Hugging Face decoder config with the schema defaults of its family filled in."""
    return resolve({"speculators_model_type": "independent", "transformer_layer_config": config})[
        "transformer_layer_config"]


FUSED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # of a decoder layer, one matmul each packed
SINGLE = ("o_proj", "down_proj")


def packed(w: dict) -> dict:
    """A decoder layer's linear weights prepacked for oneDNN: those of each FUSED group stacked into one
    (weight, bias or None, output sizes) for nn.linears, unless only some of them have a bias; the others alone."""
    reorder = torch.ops.mkldnn._reorder_linear_weight
    out = {role: reorder(w[role]) for role in SINGLE}
    for roles in FUSED:
        biases = [w.get(f"{role}_bias") for role in roles]
        if any(b is None for b in biases) and any(b is not None for b in biases):
            out.update({role: reorder(w[role]) for role in roles})
        else:
            out[roles] = (reorder(torch.cat([w[role] for role in roles])),
                          None if biases[0] is None else torch.cat(biases), [w[role].shape[0] for role in roles])
    return out


def packed_for_decoding(w: dict, roles: tuple[str, ...] = ()) -> dict:
    """A draft's weights `w` with nn.linear's prepacked copies (`w["packed"]`): of a decoder layer's linear weights
    (packed), or of `roles` one by one. Only when they are bfloat16 on a CPU that packs them (packs_bfloat16) and no
    gradient flows through them, since a packed copy does not follow an optimizer step; otherwise `w` itself."""
    probe = w[roles[0] if roles else "o_proj"]
    if probe.requires_grad or not packs(probe.dtype, probe.device):
        return w
    reorder = torch.ops.mkldnn._reorder_linear_weight
    return {**w, "packed": {role: reorder(w[role]) for role in roles} if roles else packed(w)}


def packs(dtype: torch.dtype, device) -> bool:
    """Whether weights of `dtype` on `device` are prepacked for decoding: bfloat16 on a CPU that packs them."""
    return dtype == torch.bfloat16 and torch.device(device).type == "cpu" and packs_bfloat16()


def packs_bfloat16() -> bool:
    """Whether oneDNN prepacks bfloat16 weights on this CPU: it needs AVX512 (BW, VL, DQ) or AVX-NE-CONVERT, and
    refuses on an AVX2-only CPU, where Verifier.pack leaves the weights as they are."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class Verifier:
    def __init__(self, config: dict, w: dict, device: str = "cpu", dtype: torch.dtype = torch.float32):
        """`config`: a llama/qwen2/qwen3 config with defaults resolved; `w`: its tensors by role, already
        on `device` in `dtype` (see from_tensors)."""
        self.config, self.w = config, w
        self.cfg = nn.LayerConfig.from_config(self.config)
        self.inv_freq = nn.rope_inv_freq(self.cfg).to(device)
        self.num_layers = self.config["num_hidden_layers"]
        self.vocab_size = self.config["vocab_size"]
        self.caches = [nn.KVCache() for _ in range(self.num_layers)]
        self.device, self.dtype = device, dtype
        self.layers, self.head = self.w["layer"], None  # the prepacked ones after pack()

    @staticmethod
    def from_tensors(config: dict, tensors: dict[str, torch.Tensor], device: str = "cpu",
                     dtype: torch.dtype = torch.float32) -> Verifier:
        """Bind Hugging Face causal-LM tensors (on-disk names) through the `independent` layout."""
        config = resolve_layer_config(config)
        problems = refusals(config)
        if problems:
            raise Refused("refused.verifier", "verifier refused: " + "; ".join(problems))
        tensors = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                   for k, v in tensors.items()}
        w = bind_roles("independent", {"speculators_model_type": "independent", "transformer_layer_config": config},
                       tensors)
        return Verifier(config, w, device, dtype)

    @staticmethod
    def from_pretrained(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Verifier:
        """The verifier of a Hugging Face directory, read through the one reader (specfmt.files: shards inside the
        directory, regular files only, every header checked), its sizes checked against the tensors read before
        any is used (specfmt.reader_facts). A refusal is a FileRefused (an OSError) of one line."""
        from specfmt import files
        from specfmt.reader_facts import check_reader_facts

        config = load_hf_config(path)
        tensors = files.checkpoint_tensors(path)
        check_reader_facts(config, str(Path(path) / "config.json"), len(tensors),
                           sum(t.numel() for t in tensors.values()))
        return Verifier.from_tensors(config, tensors, device, dtype)

    def __len__(self) -> int:
        return len(self.caches[0])

    @property
    def embed_tokens(self) -> torch.Tensor:
        return self.w["embed_tokens"]

    @property
    def lm_head(self) -> torch.Tensor:
        return self.w.get("lm_head", self.w["embed_tokens"])  # tied when lm_head is absent

    def truncate(self, length: int) -> None:
        """Drop cached positions >= length (rejected drafts)."""
        for cache in self.caches:
            cache.truncate(length)

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep only these rows of the batch in every layer's cache (the rows still decoding)."""
        for cache in self.caches:
            cache.select(rows.to(self.device))

    def pack(self) -> None:
        """Keep a copy of every linear weight prepacked for oneDNN when the verifier is bfloat16 on a CPU: its matmuls
        run about 1.7x faster at batch 64 (benchmarks/datagen.py), and a whole decoding pass of SmolLM2-135M 1.3x to
        1.5x faster at 1 to 16 rows, with results equal to F.linear's, for a second copy of the weights in memory.
        Every decoding loop (generate, generate_plain, generate_batch) packs its verifier. Without oneDNN's
        bfloat16 packing (packs_bfloat16), or in another dtype or device, it does nothing."""
        if self.head is not None or not packs(self.dtype, self.device):
            return
        self.layers = [{**self.w["layer"][i], "packed": packed(self.w["layer"][i])} for i in range(self.num_layers)]
        self.head = torch.ops.mkldnn._reorder_linear_weight(self.lm_head)

    def sibling(self) -> Verifier:
        """The same weights, packed ones too, with caches of its own (rows prefilled beside a decoding batch)."""
        other = Verifier(self.config, self.w, self.device, self.dtype)
        other.layers, other.head = self.layers, self.head
        return other

    def put_rows(self, rows: torch.Tensor, other: Verifier) -> None:
        """Write every position of `other`'s caches as the last positions of these rows of this batch's caches."""
        for mine, theirs in zip(self.caches, other.caches, strict=True):
            mine.put(rows.to(self.device), theirs.k[..., :len(theirs), :], theirs.v[..., :len(theirs), :])

    def shift(self, n: int) -> None:
        """Drop the first n cached positions of every row, or add -n masked ones in front (n < 0)."""
        for cache in self.caches:
            cache.shift(n)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, aux_ids: tuple[int, ...] = (), positions: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, last_logits: bool = False) -> Output:
        """Run `tokens` ([T], or a batch [B, T]) after the cached positions; capture hidden_states[k] for k in
        aux_ids. Positions and mask default to the next positions and causal attention; a batch of left-padded
        rows passes its own (positions [B, T], mask [B, 1, T, S]). `last_logits`: the LM head runs on the last
        position only (logits [..., 1, V]), what a prefill that only decodes on needs."""
        past, t = len(self), tokens.shape[-1]
        if positions is None:
            positions = torch.arange(past, past + t, device=self.device)
        if mask is None:
            mask = nn.causal_mask(t, past, self.device)
        x = F.embedding(tokens.to(self.device), self.embed_tokens)  # [..., T] -> [..., T, H]
        rot = nn.rotary(positions, self.inv_freq, x.dtype)
        states = {0: x}
        for i in range(self.num_layers):
            x = nn.decoder_layer(x, self.layers[i], self.cfg, rot, self.caches[i], mask)
            states[i + 1] = x
        normed = nn.rms_norm(x, self.w["norm"], self.cfg.eps)
        aux = torch.cat([states[k] for k in aux_ids], -1) if aux_ids else x[..., :0]  # [..., T, A*H]
        head_in = normed[..., -1:, :].contiguous() if last_logits else normed  # [..., T, H] -> [..., 1, H]
        logits = F.linear(head_in, self.lm_head) if self.head is None else nn.packed_linear(head_in, self.head, None)
        return Output(logits, aux, x, normed)


def load_hf_config(path: str | Path) -> dict:
    """The config.json object of a Hugging Face directory, read through specfmt.files (bounded, strict, a regular
    file); FileRefused when it is absent, unreadable or no JSON object."""
    from specfmt import files

    file = Path(path) / "config.json"
    config = files.read_json(file, file)
    if not isinstance(config, dict):
        raise files.not_object(file, "", config)
    return config
