"""Resumable training state: the draft (a strict checkpoint), the AdamW moments in safetensors and the loop's
position in state.json, published together (specfmt.publish), so a stopped run leaves the last complete
checkpoint. A lock file keeps a second run out of the same work directory. Nothing here is a pickle.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from specfmt.checkpoint import save
from specfmt.publish import publish, recover
from specfmt.safetensors_file import write_tensors

CHECKPOINT = "checkpoint"
LOCK = "train.lock"


def write(work: Path, config: dict, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
          names: dict[int, str], position: dict) -> Path:
    """Replace work/checkpoint with the draft, the optimizer moments and `position` (specfmt.publish: a kill
    leaves the previous checkpoint or this one)."""
    moments = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            moments[f"{names[index]}.{key}"] = value.detach().reshape(-1).float()  # step is a scalar tensor

    def fill(staging: Path) -> None:
        save(config, {n: t.detach() for n, t in tensors.items()}, staging / "draft")
        write_tensors(staging / "optimizer.safetensors", moments, {"format": "pt"})
        (staging / "state.json").write_text(json.dumps(position, indent=1) + "\n", encoding="utf-8")

    return publish(work / CHECKPOINT, fill, overwrite=True)


def undo_killed_write(work: Path) -> None:
    """Undo what a killed write left (specfmt.publish.recover): a checkpoint moved aside goes back, staging
    directories go. One process does it (rank 0), before any reads."""
    recover(work / CHECKPOINT)


def read(work: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
    """(position, draft tensors, optimizer moments) of the last checkpoint, or None."""
    root = work / CHECKPOINT
    if not (root / "state.json").is_file():
        return None
    position = json.loads((root / "state.json").read_text(encoding="utf-8"))
    tensors = load_file(str(root / "draft" / "model.safetensors"))
    return position, tensors, load_file(str(root / "optimizer.safetensors"))


def lock(work: Path) -> int:
    """An exclusive lock on the work directory, held until this process exits (the descriptor returned stays
    open): a second run into it would corrupt the first one's state, so it stops, naming the holder's pid."""
    work.mkdir(parents=True, exist_ok=True)
    fd = os.open(work / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ValueError(f"{work} is in use by another specfmt train (pid {holder}); wait for it to end, or "
                         "train into another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


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
