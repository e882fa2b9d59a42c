"""IBM MLP speculator: a chain of MLP stages on the verifier's final-normed state; stage i reads the
running state and the token chosen before it, and predicts one token with its own head.

Spec: spec/algorithms/mlp_speculator.md (forward computation, ALG-MLP-*)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from specfmt import nn
from specfmt.findings import Refused
from specfmt.layout import expand
from specfmt.proposal import Context, Drafted, Picker, Sample, to_target
from specfmt.verifier import Verifier

EPS = 1e-6  # fixed in fms LayerNormParameterized


def norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """RMS-style norm without mean subtraction, with optional scale and shift."""
    x32 = nn.widen(x)
    x = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype)
    x = x if weight is None else weight * x
    return x if bias is None else x + bias


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """Nothing beyond validation: the layout binds every shape to the verifier facts (ALG-MLP-1)."""
    return []


class MlpSpeculator:
    aux_ids: tuple[int, ...] = ()  # reads ctx.normed, the state the verifier's LM head reads
    targets = None  # the verifier's vocabulary

    def __init__(self, config: dict, w: dict, verifier: Verifier):
        self.w = w
        self.n_predict = config["n_predict"]
        self.scale_input = config["scale_input"]
        d = expand("mlp_speculator", config)[0]["D"]  # inner_dim, or H when inner_dim is 0
        # Constants use n_predict, not k (ALG-MLP-4).
        self.state_weight = 0.5 ** (0.5 / self.n_predict)
        self.emb_weight = math.sqrt((1 - self.state_weight ** 2) * d / 2)
        self.vocab_size = verifier.vocab_size

    def stage(self, i: int, s: torch.Tensor, token: int | torch.Tensor) -> torch.Tensor:
        """Stage i: state [..., H] or [..., D], previous token (an id, or ids [...]) -> new state [..., D]."""
        z = self.w["emb"][i][token]  # [D]
        proj = self.w["proj0"] if i == 0 else self.w["proj"][i]
        s = F.linear(s, proj) + (self.emb_weight / self.state_weight) * z  # [H] or [D] -> [D]
        return F.gelu(norm(s, self.w["ln"][i], self.w["ln_bias"][i]))  # exact (erf) GELU

    def train_forward(self, sample: Sample, steps: int) -> list[torch.Tensor]:
        """Every row at once, teacher-forced: stage k reads the true token at t + 1 + k and predicts t + 2 + k.
        Spec: spec/algorithms/mlp_speculator.md#ALG-MLP-4"""
        s, tokens, t = self.initial_state(sample.normed), sample.tokens, sample.tokens.numel()
        out = []
        for k in range(steps):
            s = self.stage(k, s, torch.cat([tokens[1 + k:], tokens.new_zeros(1 + k)])[:t])
            out.append(F.linear(s, self.w["head"][k]))  # [T, D] -> [T, V]
        return out

    def initial_state(self, normed: torch.Tensor) -> torch.Tensor:
        """The verifier state stage 0 reads: scaled by a parameter-free norm when scale_input."""
        return norm(normed) / math.sqrt(2) if self.scale_input else normed

    def reset(self) -> None:
        """Nothing to forget: each proposal reads only the context."""

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Stage 0 starts from the state at position n-1 and the pending token x[n]; each later stage
        conditions on the token chosen by the stage before. Spec: spec/algorithms/mlp_speculator.md#ALG-MLP-4"""
        if k > self.n_predict:  # ALG-MLP-1
            raise Refused("refused.k_above_limit",
                          f"mlp_speculator cannot propose {k} tokens with n_predict {self.n_predict}")
        s = self.initial_state(ctx.normed[-1])
        token = ctx.tokens[-1]
        ids, probs = [], []
        for i in range(k):
            s = self.stage(i, s, token)
            token, q = pick(F.linear(s, self.w["head"][i]))  # [D] -> [V]; predicts position n+1+i
            ids.append(token)
            probs.append(q)
        return to_target(ids, probs, None, self.vocab_size)


def build(config: dict, w: dict, verifier: Verifier) -> MlpSpeculator:
    return MlpSpeculator(config, w, verifier)
