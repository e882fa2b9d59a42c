"""Numerics-level cases: what one case is and how it is written, and the cases that run the tiny
verifier and drafts of num_fixtures (verifier_forward, propose, draft_forward, generate).

Goldens are computed by the reference runtime in float64 on CPU and stored in float32. Computed in
float32, a golden moves with the CPU's kernels (AVX2, AVX-512, thread count) by up to the float32
rounding of the whole computation, and a recurrent draft (EAGLE-1 feeds its unnormalised decoder
output back) amplifies that of its verifier inputs about tenfold; in float64 those moves are far below
float32's resolution, so a golden is the exact value rounded once, on every CPU. Inputs computed by
the verifier are stored in float32 first and the outputs computed from the stored values, so a
golden is a function of the case's own inputs. The tolerance then covers only the float32 error of
the implementation under test.

Near ties are refused: every token a case compares is chosen with a top-2 logit margin of at least
MIN_TOP2_MARGIN, and the case records the smallest margin it saw, rounded to MARGIN_DIGITS
significant digits, as golden.min_top2_margin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from conformance.generators.common import fresh_dir, manifest_algorithm, slug, write_json
from conformance.generators.num_fixtures import DRAFTS, VERIFIER, draft_path
from conformance.generators.page_rules import FORWARD, STEPS, page_anchors
from specfmt.generate import generate, generate_plain
from specfmt.proposal import Context, Proposal, RecordingPicker
from specfmt.runtime import load_draft
from specfmt.safetensors_file import write_tensors
from specfmt.schemas import VERSION
from specfmt.verifier import Verifier

NUMERICS_DIR = Path("cases") / "numerics" / VERSION
MIN_TOP2_MARGIN = 1e-3  # logits (log space): far above fp32 noise, so token ids compare exactly
EXACT = {"compare": "exact"}
FLOAT32 = {"compare": "allclose", "rtol": 1e-4, "atol": 1e-5}  # logits and hidden states, fp32 golden
GENERATOR = "specfmt reference runtime, float64, cpu"
COMPUTE_DTYPE = torch.float64  # golden.computed_in; a golden is stored in float32 (golden.dtype)
STORED_DTYPE = "float32"
MARGIN_DIGITS = 4  # significant digits of a recorded margin: it says how far a case is from a tie
SEEDS = range(200)  # candidate inputs a generator tries, in order, until one has no near tie


@dataclass
class NumericsCase:
    id: str
    description: str
    spec: list[str]
    operation: str
    checkpoint: str | None
    verifier: str | None
    params: dict
    inputs: dict[str, torch.Tensor]
    expected: dict[str, torch.Tensor]
    outputs: dict[str, dict]
    golden: dict = field(default_factory=dict)
    refusal: str | None = None  # the code of a request the spec requires refused: no outputs (PROTOCOL.md 3.4)


def write_numerics_case(case: NumericsCase, suite: Path) -> dict:
    """case.json, inputs.safetensors and expected.safetensors under `suite`; its manifest entry."""
    rel = NUMERICS_DIR / case.id
    case_dir = fresh_dir(suite / rel)
    meta = {"generator": GENERATOR, "case_id": case.id}
    write_tensors(case_dir / "inputs.safetensors", case.inputs, meta)
    doc = {"id": case.id, "description": case.description, "since": VERSION, "spec": case.spec,
           "operation": case.operation, "checkpoint": case.checkpoint, "verifier": case.verifier,
           "params": case.params, "inputs": "inputs.safetensors", "expected": None, "outputs": {},
           "refusal": case.refusal}
    if case.refusal is None:
        write_tensors(case_dir / "expected.safetensors", case.expected, meta)
        del doc["refusal"]
        doc.update(expected="expected.safetensors", outputs=case.outputs,
                   golden={"generator": GENERATOR, "device": "cpu", "computed_in": "float64", "dtype": STORED_DTYPE,
                           **case.golden})
    write_json(case_dir / "case.json", doc)
    config = json.loads((suite / case.checkpoint / "config.json").read_bytes()) if case.checkpoint else {}
    return {"id": case.id, "level": "numerics", "path": rel.as_posix(), "since": VERSION, **manifest_algorithm(config)}


def rounded(value: float) -> float:
    """A machine-computed diagnostic, kept to MARGIN_DIGITS significant digits."""
    return float(f"{value:.{MARGIN_DIGITS}g}")


def top2_margin(logits: torch.Tensor) -> float:
    """The smallest gap between the two largest logits over the rows of `logits` ([..., V])."""
    top = torch.topk(logits, 2, -1).values
    return float((top[..., 0] - top[..., 1]).min())


def stored(t: torch.Tensor) -> torch.Tensor:
    """A computed float tensor as a case stores it; integer tensors unchanged."""
    return t.float() if t.is_floating_point() else t


def models(suite: Path, checkpoint: str, verifier: str = VERIFIER):
    """The verifier and the draft of two fixture paths (relative to the suite root)."""
    loaded = Verifier.from_pretrained(suite / verifier, dtype=COMPUTE_DTYPE)
    return loaded, load_draft(suite / checkpoint, loaded)[0]


def prompt(seed: int, length: int) -> torch.Tensor:
    """Seeded prompt tokens; the second half repeats the first, so n-gram lookup finds a match."""
    half = torch.randint(0, 64, (length - length // 2,), generator=torch.Generator().manual_seed(seed))
    return torch.cat([half, half[:length // 2]])


def verifier_forward_cases(suite: Path, verifier_path: str = VERIFIER, aux_sets: tuple = ([1, 3, 5], [0, 6]),
                           name: str = "", about: str = "") -> list[NumericsCase]:
    """The verifier's logits and aux states over 8 seeded tokens with no near tie, for each aux id list."""
    cases = []
    for aux_ids in aux_sets:
        verifier = Verifier.from_pretrained(suite / verifier_path, dtype=COMPUTE_DTYPE)
        for seed in SEEDS:
            tokens = prompt(seed, 8)
            verifier.truncate(0)
            out = verifier.forward(tokens, tuple(aux_ids))
            if top2_margin(out.logits) >= MIN_TOP2_MARGIN:
                break
        ids = "-".join(map(str, aux_ids))
        cases.append(NumericsCase(
            f"num.verifier-forward.{name}aux-{ids}",
            f"{about}verifier logits and hidden states {aux_ids} over 8 tokens",
            ["spec/config.md#CFG-9", "spec/verifier.md"], "verifier_forward", None, verifier_path,
            {"aux_ids": aux_ids}, {"token_ids": tokens}, {"logits": stored(out.logits), "aux": stored(out.aux)},
            {"logits": FLOAT32, "aux": FLOAT32}, {"min_top2_margin": rounded(top2_margin(out.logits))}))
    return cases


def context(verifier: Verifier, draft, tokens: torch.Tensor) -> tuple[Context, dict, float]:
    """The verifier run over all but the last token, which is its greedy choice: the draft's input.
    The draft reads the features as the case stores them (float32), widened back to the compute dtype."""
    verifier.truncate(0)
    out = verifier.forward(tokens, draft.aux_ids)
    pending = int(out.logits[-1].argmax())
    inputs = {"token_ids": torch.cat([tokens, torch.tensor([pending])]), "aux": stored(out.aux),
              "last": stored(out.last), "normed": stored(out.normed)}
    features = [inputs[name].to(COMPUTE_DTYPE) for name in ("aux", "last", "normed")]
    return Context(inputs["token_ids"].tolist(), *features), inputs, top2_margin(out.logits[-1])


def proposal_cases(suite: Path, algorithm: str, k: int = 3, checkpoint: str | None = None,
                   verifier_path: str = VERIFIER, name: str | None = None,
                   forward: bool = True) -> list[NumericsCase]:
    """propose and draft_forward (unless not `forward`) from one prefix with no near tie in any proposal
    row. The context ends in the verifier's greedy token, so an engine can reach it by decoding."""
    checkpoint, name = checkpoint or draft_path(algorithm), name or slug(algorithm)
    verifier, draft = models(suite, checkpoint, verifier_path)
    for seed in SEEDS:
        ctx, inputs, pending_margin = context(verifier, draft, prompt(seed, 6))
        draft.reset()
        recorder = RecordingPicker()
        drafted = draft.propose(ctx, k, recorder)
        margins = [top2_margin(row) for row in recorder.logits] + [pending_margin]
        if min(margins) >= MIN_TOP2_MARGIN and drafted.tokens.numel() > 0:
            break
    if algorithm == "eagle3" and draft.targets is not None:  # the case must catch an implementation that ignores d2t
        ids = torch.stack([row.argmax() for row in recorder.logits])
        assert bool((draft.targets[ids] != ids).any()), "the eagle3 proposal needs a draft id with a d2t offset"
    spec = page_anchors(algorithm, FORWARD)
    golden = {"min_top2_margin": rounded(min(margins))}
    cases = [NumericsCase(
        f"num.propose.{name}-k{k}", f"greedy chain of {k} {algorithm} draft tokens, in verifier ids",
        spec, "propose", checkpoint, verifier_path, {"k": k}, inputs, {"draft_tokens": drafted.tokens},
        {"draft_tokens": EXACT}, golden)]
    if recorder.logits and forward:
        cases.append(NumericsCase(
            f"num.draft-forward.{name}-k{k}", f"the {algorithm} draft logits of each of {k} greedy rows",
            spec, "draft_forward", checkpoint, verifier_path, {"k": k}, inputs,
            {"draft_logits": torch.stack(recorder.logits)}, {"draft_logits": FLOAT32}, golden))
    return cases


def generate_case(suite: Path, algorithm: str, max_new_tokens: int = 12, k: int = 3, checkpoint: str | None = None,
                  verifier_path: str = VERIFIER, name: str | None = None, prompts: list[torch.Tensor] | None = None,
                  wanted: Callable[[list[int]], bool] | None = None, about: str = "") -> NumericsCase:
    """Greedy speculative decoding from the first of `prompts` (seeded ones by default) with no near tie at any
    generated token and, when `wanted` is given, whose accepted counts per step it wants."""
    checkpoint, name = checkpoint or draft_path(algorithm), name or slug(algorithm)
    verifier, draft = models(suite, checkpoint, verifier_path)
    proposal = Proposal("greedy", k)
    for prompt_ids in prompts if prompts is not None else (prompt(seed, 6) for seed in SEEDS):
        tokens = generate_plain(verifier, prompt_ids.tolist(), max_new_tokens, proposal)
        verifier.truncate(0)
        logits = verifier.forward(torch.tensor(prompt_ids.tolist() + tokens[:-1])).logits[len(prompt_ids) - 1:]
        if top2_margin(logits) < MIN_TOP2_MARGIN:
            continue
        result = generate(verifier, draft, prompt_ids.tolist(), max_new_tokens, proposal)
        if wanted is None or wanted(result.stats.accepted):
            break
    else:
        raise AssertionError(f"{name}: no prompt without a near tie gives the acceptance wanted")
    assert result.tokens == tokens, f"{algorithm}: speculative decoding differs from the verifier alone"
    return NumericsCase(
        f"num.generate.{name}-n{max_new_tokens}-k{k}",
        f"{max_new_tokens} tokens of greedy speculative decoding with the {algorithm} draft, K {k}"
        + (f"; {about}" if about else ""),
        ["spec/verification.md#VRF-6", "spec/verification.md#VRF-3", *page_anchors(algorithm, FORWARD, STEPS)],
        "generate", checkpoint, verifier_path,
        {"max_new_tokens": max_new_tokens, "k": k}, {"prompt_ids": prompt_ids}, generate_outputs(result),
        dict.fromkeys(GENERATE_OUTPUTS, EXACT),
        {"min_top2_margin": rounded(top2_margin(logits)), "accepted_per_step": result.stats.accepted})


GENERATE_OUTPUTS = ("tokens", "drafts", "accepted_per_position")


def generate_outputs(result) -> dict[str, torch.Tensor]:
    """The committed tokens and the acceptance counters (spec/verification.md#VRF-6) of one generation."""
    counters = result.stats.counters()
    return {"tokens": torch.tensor(result.tokens), "drafts": torch.tensor([counters["drafts"]]),
            "accepted_per_position": torch.tensor(counters["accepted_per_position"])}


def model_cases(suite: Path) -> list[NumericsCase]:
    cases = verifier_forward_cases(suite)
    for algorithm in DRAFTS:
        cases += proposal_cases(suite, algorithm)
    return cases + [generate_case(suite, algorithm) for algorithm in DRAFTS]
