"""The training loop: the runtime's draft module in train mode (TrainableDraft.train_forward), AdamW, a
warm-up then cosine learning rate, resumable checkpoints written atomically, a JSONL log, validation by
decoding held-out prompts with the runtime, and data parallelism through torch.distributed (launch with
torchrun: gloo on CPU, nccl on CUDA; every rank takes its share of each global batch and DDP averages the
gradients, so N ranks compute what one process computes on the same global batch).

The work directory holds `checkpoint/` (the draft as a strict checkpoint, `optimizer.safetensors` and
`state.json`, replaced atomically) and `log.jsonl` (a record per optimizer step, and the validation of each epoch).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.distributed as dist

from specfmt.checkpoint import save
from specfmt.defaults import resolve
from specfmt.generate import Stats, generate
from specfmt.proposal import Proposal
from specfmt.runtime import build_draft
from specfmt.train import state
from specfmt.train.datagen import Cache
from specfmt.train.objective import objective, summary, verifier_head
from specfmt.train.options import TrainOptions, flag_of
from specfmt.train.recipes import Start
from specfmt.verifier import Verifier


class Trainee(torch.nn.Module):
    """The draft's trainable tensors as parameters, and its train-mode forward with the objective: what DDP wraps."""

    def __init__(self, draft, params: dict[str, torch.nn.Parameter], lm_head: torch.Tensor, opts: TrainOptions):
        super().__init__()
        self.draft, self.lm_head, self.opts = draft, lm_head, opts
        self.params = torch.nn.ParameterDict({n.replace(".", "__"): p for n, p in params.items()})

    def forward(self, sample, greedy):
        head = verifier_head(sample, self.lm_head, self.draft.targets)
        weights = [self.opts.step_decay ** k for k in range(self.opts.steps)]
        return objective(self.draft.train_forward(sample, self.opts.steps), sample, greedy, head,
                         self.draft.targets, weights)


def autocast(precision: str, device: torch.device):
    """Mixed precision: matrix products in bfloat16 (AMX and AVX512-BF16 CPUs run them about 6x faster than
    float32 here), reductions and the loss in float32 as torch.autocast keeps them; float32 is no autocast."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=getattr(torch, precision))


def distributed() -> tuple[int, int]:
    """(rank, world size), joining the process group torchrun describes; (0, 1) without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def learning_rate(opts: TrainOptions, step: int, total: int) -> float:
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    progress = (step - opts.warmup) / max(total - opts.warmup, 1)
    return opts.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0))))


def batches(n: int, opts: TrainOptions, epoch: int) -> list[list[int]]:
    """The global batches of an epoch: a permutation seeded by (seed, epoch), so a resumed run sees the same."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(opts.seed * 1000 + epoch)).tolist()
    return [order[i:i + opts.batch] for i in range(0, n - opts.batch + 1, opts.batch)]


class Run:
    def __init__(self, start: Start, verifier: Verifier, cache: Cache, opts: TrainOptions, work: Path):
        self.start, self.verifier, self.cache, self.opts, self.work = start, verifier, cache, opts, work
        self.rank, self.world = distributed()
        self.resolved = resolve(start.config)
        self.tensors = {n: t.float() if t.is_floating_point() else t for n, t in start.tensors.items()}
        self.params = {n: torch.nn.Parameter(t) for n, t in sorted(self.tensors.items())
                       if t.is_floating_point() and n not in start.frozen}
        self.tensors.update(self.params)
        draft = build_draft(self.resolved, self.tensors, verifier)  # binds these very parameters by role
        self.module = Trainee(draft, self.params, verifier.lm_head.float(), opts)
        self.model = torch.nn.parallel.DistributedDataParallel(self.module) if self.world > 1 else self.module
        self.optimizer = torch.optim.AdamW(self.params.values(), lr=opts.lr, betas=(0.9, 0.95), weight_decay=0.0)
        self.step = 0
        self.validation: dict | None = None  # the last held-out validation, kept in the checkpoint

    def micro_steps(self, ids: list[int]) -> torch.Tensor:
        """This rank's share of one global batch: backward on each sample, gradients synchronised on the last."""
        mine, metrics = ids[self.rank::self.world], torch.zeros(self.opts.steps, 4)
        for i, index in enumerate(mine):
            sample, greedy = self.cache.sample(index, self.verifier)
            last = i == len(mine) - 1
            sync = self.model.no_sync() if self.world > 1 and not last else contextlib.nullcontext()
            with sync:
                with autocast(self.opts.precision, self.verifier.device):
                    loss, m = self.model(sample, greedy)
                (loss / len(mine)).backward()
            metrics += m
        return metrics

    def optimizer_step(self, ids: list[int], total: int) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.opts, self.step, total)
        self.optimizer.zero_grad(set_to_none=True)
        metrics = self.micro_steps(ids)
        torch.nn.utils.clip_grad_norm_(self.params.values(), self.opts.grad_clip)
        self.optimizer.step()
        self.step += 1
        if self.world > 1:
            dist.all_reduce(metrics)
        return metrics


def validate(run: Run, prompts: list[list[int]], eos_id: int | None) -> dict:
    """Acceptance of the current weights, measured by decoding held-out prompts with the runtime (greedy)."""
    draft = build_draft(run.resolved, {n: t.detach().clone() for n, t in run.tensors.items()}, run.verifier)
    accepted: list[int] = []
    for prompt in prompts:
        result = generate(run.verifier, draft, prompt, run.opts.val_tokens, Proposal("greedy", run.opts.steps),
                          eos_token_id=eos_id)
        accepted += result.stats.accepted
    stats = Stats(run.opts.steps, accepted)
    return {"prompts": len(prompts), "steps": len(accepted), "tau": round(stats.tau, 4),
            "acceptance_by_position": [round(a, 4) for a in stats.acceptance_by_position]}


def changed_options(saved: dict, now: dict) -> list[str]:
    """`--flag OLD (now NEW)` for each option that differs from the checkpoint's."""
    flags = {f.name: flag_of(f) for f in fields(TrainOptions)}
    return [f"{flags.get(k) or '--' + k.replace('_', '-')} {saved.get(k)} (now {now.get(k)})"
            for k in sorted(saved.keys() | now.keys()) if saved.get(k) != now.get(k)]


def changed_draft(saved: dict | None, now: dict) -> list[str]:
    """`field OLD (now NEW)` for each config field of the new draft that differs from the checkpoint's (a recipe's
    own option changed, such as --draft-vocab-size); nothing for a checkpoint that did not record its draft."""
    if saved is None:
        return []
    now, changed = json.loads(json.dumps(now)), []  # as state.json holds it: tuples are lists
    for key in sorted(saved.keys() | now.keys()):
        old, new = saved.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [f"{key}.{k} {old.get(k)} (now {new.get(k)})" for k in sorted(old.keys() | new.keys())
                        if old.get(k) != new.get(k)]
        elif old != new:
            changed.append(f"{key} {old} (now {new})")
    return changed


def resume(run: Run) -> tuple[int, int]:
    """Restore the last checkpoint of the same options: (epoch, batch) to continue from; (0, 0) without one. A
    checkpoint that a kill left moved aside is put back first, so a kill never sends the run back to step 0."""
    if run.rank == 0:
        state.undo_killed_write(run.work)
    if run.world > 1:
        dist.barrier()
    found = state.read(run.work)
    if found is None:
        return 0, 0
    position, tensors, moments = found
    changed = changed_options(position["options"], asdict(run.opts)) + changed_draft(position.get("draft"),
                                                                                     run.start.config)
    if changed:
        raise ValueError(f"{run.work / state.CHECKPOINT} (step {position['step']}) was written with other options: "
                         f"{', '.join(changed)}; pass the same values to resume it, or --restart to discard it")
    state.restore(run.optimizer, run.params, tensors, moments)
    run.step, run.validation = position["step"], position.get("validation")
    return position["epoch"], position["batch"]


def checkpoint(run: Run, epoch: int, batch: int) -> None:
    if run.rank == 0:
        state.write(run.work, run.start.config, run.tensors, run.optimizer, dict(enumerate(run.params)),
                    {"epoch": epoch, "batch": batch, "step": run.step, "options": asdict(run.opts),
                     "draft": run.start.config, "validation": run.validation})


def train(start: Start, verifier: Verifier, cache: Cache, opts: TrainOptions, work: Path,
          progress: Callable[[dict, int], None], eos_id: int | None = None) -> Run:
    """Train from the cache, resuming from work/checkpoint; returns the run with its final weights and its last
    validation (run.validation)."""
    torch.manual_seed(opts.seed)
    work.mkdir(parents=True, exist_ok=True)
    run = Run(start, verifier, cache, opts, work)
    resumed_at = resume(run)  # (epoch, batch)
    if run.step:
        progress({"resumed": run.step}, 0)
    per_epoch = len(batches(len(cache), opts, 0))
    total = min(opts.epochs * per_epoch, opts.max_steps or opts.epochs * per_epoch)
    if per_epoch == 0:
        raise ValueError(f"the cache holds {len(cache)} samples, fewer than one batch of {opts.batch}")
    for epoch in range(resumed_at[0], opts.epochs):
        trained = False
        for b, ids in enumerate(batches(len(cache), opts, epoch)):
            if (epoch, b) < resumed_at or run.step >= total:
                continue
            trained = True
            begun = time.perf_counter()
            metrics = run.optimizer_step(ids, total)
            record = {"step": run.step, "epoch": epoch, "lr": learning_rate(opts, run.step - 1, total),
                      "loss": round(float(metrics[:, 0].sum() / metrics[:, 1].clamp(min=1).sum()), 4),
                      **summary(metrics), "seconds": round(time.perf_counter() - begun, 3)}
            log(run, record)
            progress(record, total)
            if run.step % opts.save_every == 0:
                checkpoint(run, epoch, b + 1)
        if run.rank == 0 and opts.val_prompts and trained:
            run.validation = validate(run, cache.index["val_prompts"][:opts.val_prompts], eos_id)
            record = {"epoch": epoch, "step": run.step, "validation": run.validation}
            log(run, record)
            progress(record, total)
    checkpoint(run, opts.epochs, 0)
    if run.world > 1:
        dist.barrier()
    return run


def log(run: Run, record: dict) -> None:
    if run.rank == 0:
        with open(run.work / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The floating-point tensors holding a NaN or an infinity."""
    return sorted(n for n, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))


def portable_options(options: dict) -> dict:
    """A cache's datagen options with the caches it excluded named as the command names paths (outs.portable)."""
    from specfmt.train.outs import portable

    return options | ({"exclude": portable(options["exclude"])} if options.get("exclude") else {})


def provenance(run: Run, command: list[str], threads: int) -> dict:
    """How the draft was made (its config's specfmt_provenance): the command, the data and the datagen options of
    each cache, the optimizer steps taken, the last held-out validation, the threads and the versions."""
    from specfmt import __version__

    data = {k: run.cache.index[k] for k in ("samples", "documents", "tokens", "supervised")}
    return {"tool": "specfmt train", "specfmt_version": __version__, "command": command,
            "data": data | {"datagen": [portable_options(part.index["options"]) for part in run.cache.parts]},
            "optimizer_steps": run.step, "validation": run.validation, "threads": threads, "torch": torch.__version__,
            **({"init": run.start.init} if run.start.init else {})}


def export(run: Run, out: Path, dtype: str, provenance: dict) -> Path:
    """The trained draft as a strict checkpoint at `out`, weights in `dtype`, with how it was made in its config.
    A draft with a NaN or infinite weight is refused before anything is written: it would pass strict."""
    config = dict(run.start.config, dtype=dtype, specfmt_provenance=provenance)
    torch_dtype = getattr(torch, dtype)
    tensors = {n: t.detach().to(torch_dtype) if t.is_floating_point() else t for n, t in run.tensors.items()}
    bad = non_finite(tensors)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(f"the trained draft holds NaN or infinite weights in {bad[0]}{more}; not written to {out}: "
                         "training diverged, lower --lr or --step-decay and pass --restart")
    return save(config, tensors, out, overwrite=True)
