"""Resumable training state: the draft (a strict checkpoint), the AdamW moments in safetensors and the loop's
position in state.json, written together into a temporary directory and renamed into place, so a stopped run
leaves the last complete checkpoint or none. Nothing here is a pickle.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from specfmt.checkpoint import save
from specfmt.safetensors_file import write_tensors

CHECKPOINT = "checkpoint"


def write(work: Path, config: dict, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
          names: dict[int, str], position: dict) -> Path:
    """Replace work/checkpoint with the draft, the optimizer moments and `position`."""
    staging = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=work))
    save(config, {n: t.detach() for n, t in tensors.items()}, staging / "draft")
    moments = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            moments[f"{names[index]}.{key}"] = value.detach().reshape(-1).float()  # step is a scalar tensor
    write_tensors(staging / "optimizer.safetensors", moments, {"format": "pt"})
    (staging / "state.json").write_text(json.dumps(position, indent=1) + "\n", encoding="utf-8")
    target = work / CHECKPOINT
    if target.exists():
        retired = work / ".checkpoint.retired"
        shutil.rmtree(retired, ignore_errors=True)
        os.rename(target, retired)
        os.rename(staging, target)
        shutil.rmtree(retired)
    else:
        os.rename(staging, target)
    return target


def read(work: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
    """(position, draft tensors, optimizer moments) of the last checkpoint, or None."""
    root = work / CHECKPOINT
    if not (root / "state.json").is_file():
        return None
    position = json.loads((root / "state.json").read_text(encoding="utf-8"))
    tensors = load_file(str(root / "draft" / "model.safetensors"))
    return position, tensors, load_file(str(root / "optimizer.safetensors"))


def restore(optimizer: torch.optim.Optimizer, params: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor],
            moments: dict[str, torch.Tensor]) -> None:
    """Copy the checkpoint's tensors into the parameters and its moments into AdamW's state."""
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name])
    state = {}
    for index, (name, param) in enumerate(params.items()):
        if f"{name}.exp_avg" in moments:
            state[index] = {"step": moments[f"{name}.step"].reshape(()),
                            "exp_avg": moments[f"{name}.exp_avg"].reshape(param.shape),
                            "exp_avg_sq": moments[f"{name}.exp_avg_sq"].reshape(param.shape)}
    saved = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
