#!/usr/bin/env python3
"""The speculators library (0.9.0) as a conformance adapter, numerics level, `draft_forward` only.

Runs in the `make interop` environment. speculators exposes only its training forward passes, so
each draft is driven through one of them with what training randomizes held fixed:
- eagle3, mtp: the first training step gives the logits of the first proposal row only; the later
  rows of an inference chain have no counterpart (speculators' later TTT steps use teacher forcing
  and their own attention layout), so they are written as NaN and the case fails after row 0, which
  the report shows as the first mismatching index. That is a finding about the library, not the spec.
- peagle: one fixed chain of depths replaces the sampled ones: every row is computed.
- dflash: a loss mask admitting one anchor at the pending token: every slot is computed. Finding:
  speculators' from_pretrained replaces the stored `embed_tokens.weight` with the verifier's embedding,
  so a DFlash checkpoint whose stored embedding differs from its verifier's runs differently there
  (the spec and vLLM use the stored one).
Other algorithms, and mtp drafts that read the verifier's final-normed state (`verifier_hidden_state: post_norm`,
which speculators does not implement), are answered `skipped` with the reason.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

MODELS: dict[str, tuple[str, object]] = {}


def build(checkpoint_dir: str, verifier_dir: str) -> tuple[str, object]:
    """The speculators model of a checkpoint, bound to a local verifier, eager attention, eval mode."""
    from speculators.config import SpeculatorModelConfig
    from speculators.model import SpeculatorModel

    config = json.loads((Path(checkpoint_dir) / "config.json").read_text())
    algorithm = config["speculators_model_type"]
    if algorithm not in ROWS:
        return algorithm, None
    if config.get("verifier_hidden_state") == "post_norm":  # speculators trains and runs mtp on pre_norm only
        return "mtp:post_norm", None
    config = SpeculatorModelConfig.from_pretrained(checkpoint_dir)
    config.speculators_config.verifier.name_or_path = verifier_dir  # read the local verifier, not the hub
    if hasattr(config, "transformer_layer_config") and algorithm in ("eagle3", "peagle"):
        config.transformer_layer_config._attn_implementation = "eager"  # flex attention needs torch.compile
    model = SpeculatorModel.from_pretrained(checkpoint_dir, config=config).float().eval()  # goldens are float32
    return algorithm, model


def capture_lm_head(model) -> dict:
    captured = {}
    model.lm_head.register_forward_hook(lambda module, args, out: captured.setdefault("logits", out))
    return captured


def eagle3_rows(model, x: dict, k: int) -> torch.Tensor:
    n = x["aux"].shape[0]
    captured = capture_lm_head(model)
    model(x["aux"][None], x["token_ids"][1:n + 1][None], torch.zeros(1, n, dtype=torch.long), ttt_steps=1)
    first = captured["logits"][0, n - 1]
    return torch.cat([first[None], torch.full((k - 1, first.numel()), float("nan"))])


def mtp_rows(model, x: dict, k: int) -> torch.Tensor:
    n = x["last"].shape[0]
    ids = torch.cat([x["token_ids"], torch.zeros(3, dtype=torch.long)])[None]  # room for its step offsets
    hidden = torch.cat([x["last"], torch.zeros(3 + 1, x["last"].shape[1])])[None]
    first = model(ids, hidden)[0][0][0, n - 1]
    return torch.cat([first[None], torch.full((k - 1, first.numel()), float("nan"))])


def peagle_rows(model, x: dict, k: int) -> torch.Tensor:
    from speculators.losses import resolve_loss_config
    from speculators.models.peagle import core

    n = x["aux"].shape[0]
    # speculators indexes its inputs at every (anchor + depth) before masking the depth rows: pad them.
    aux = torch.cat([x["aux"], torch.zeros(k - 1, x["aux"].shape[1])])
    ids = torch.cat([x["token_ids"][1:n + 1], torch.zeros(k - 1, dtype=torch.long)])
    anchors = torch.cat([torch.arange(n), torch.full((k - 1,), n - 1)])
    depths = torch.cat([torch.zeros(n, dtype=torch.long), torch.arange(1, k)])
    core.generate_cod_sample_indices = lambda **_: (anchors, depths)  # one inference pass, not sampled
    captured = capture_lm_head(model)
    model(aux[None], ids[None], torch.zeros(1, ids.numel(), dtype=torch.long),
          verifier_last_hidden_states=torch.zeros(1, ids.numel(), x["last"].shape[1]),
          loss_config=resolve_loss_config("kl_div", implementation="eager"))  # fused losses need Triton
    return captured["logits"][0, n - 1:]


def dflash_rows(model, x: dict, k: int) -> torch.Tensor:
    n, block = x["aux"].shape[0], model.block_size
    pad = block + 1  # speculators never anchors in the last block_size positions
    aux = torch.cat([x["aux"], torch.zeros(pad, x["aux"].shape[1])])[None]
    ids = torch.cat([x["token_ids"], torch.zeros(pad - 1, dtype=torch.long)])[None]
    loss_mask = torch.zeros_like(ids)
    loss_mask[0, n] = 1  # the only admissible anchor: the pending token
    _, logits, *_ = model._backbone_forward(aux, ids, loss_mask, torch.zeros(1, ids.shape[1], x["last"].shape[1]),
                                            torch.zeros_like(ids), max_anchors=1)
    first = 0 if model.config.sample_from_anchor else 1
    return logits[0, first:first + k]


ROWS = {"eagle3": eagle3_rows, "mtp": mtp_rows, "peagle": peagle_rows, "dflash": dflash_rows}


def handle(message: dict) -> dict:
    cmd, seq = message.get("cmd"), message.get("seq")
    if cmd == "hello":
        import speculators

        return {"protocol": 1, "implementation": {"name": "speculators", "language": "python",
                                                   "version": getattr(speculators, "__version__", "0.9.0")},
                "supports": {"levels": ["numerics"], "profiles": [], "operations": ["draft_forward"]}}
    if cmd == "load":
        handle_id = f"h{len(MODELS) + 1}"
        MODELS[handle_id] = build(message["checkpoint_dir"], message["verifier_dir"])
        return {"seq": seq, "handle": handle_id}
    if cmd == "unload":
        MODELS.pop(message["handle"], None)
        return {"seq": seq, "ok": True}
    if cmd == "run":
        algorithm, model = MODELS[message["handle"]]
        if algorithm == "mtp:post_norm":
            return {"seq": seq, "skipped": True, "reason": "speculators 0.9.0 feeds mtp the verifier state before its "
                    "final norm only (verifier_hidden_state post_norm)"}
        if algorithm not in ROWS:
            return {"seq": seq, "skipped": True, "reason": f"speculators 0.9.0 has no CPU path wired for {algorithm}"}
        x = load_file(message["inputs"])
        with torch.no_grad():
            logits = ROWS[algorithm](model, x, message["params"]["k"])
        save_file({"draft_logits": logits.float().contiguous()}, message["outputs"])
        if algorithm in ("eagle3", "mtp"):
            print(f"{message['case_id']}: rows after the first have no speculators counterpart (NaN)", file=sys.stderr)
        return {"seq": seq, "ok": True}
    return {"seq": seq, "error": {"message": f"unsupported command {cmd!r}"}}


if __name__ == "__main__":
    from specfmt import jsonlines  # the protocol transport (stdlib only)

    jsonlines.serve(handle)
