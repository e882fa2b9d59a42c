"""vLLM 0.32 serves the demo pair: SmolLM2-135M-Instruct (make demo-models) with the EAGLE-3 draft that
`specfmt train` made for it (examples/smollm2-135m-eagle3, bfloat16 weights, a draft vocabulary with d2t,
no embed_tokens: vLLM shares the verifier's). Its proposals at every depth and its acceptance counters equal the
reference's, and its own plain and speculative tokens/s are reported (float32, the engine's settings)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from vllm_reference import compare_proposals, reference_draft

from builders import DEMO_DRAFT, DEMO_PROMPTS, demo_verifier_dir
from specfmt.generate import generate, generate_plain
from specfmt.proposal import Proposal
from specfmt.text import Text, read_prompts
from specfmt.verifier import Verifier

pytest.importorskip("vllm")
pytestmark = [pytest.mark.interop, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "conformance" / "adapters" / "vllm" / "engine.py"
K, PROMPTS, MAX_TOKENS = 3, 8, 96


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    found = demo_verifier_dir()
    if not (found / "model.safetensors").is_file():
        pytest.skip("the demo verifier is absent: run `make demo-models` (make interop does)")
    root = tmp_path_factory.mktemp("demo-pair")
    draft = root / "draft"
    shutil.copytree(DEMO_DRAFT, draft)
    config = json.loads((draft / "config.json").read_text())
    config["speculators_config"]["verifier"]["name_or_path"] = str(found)  # vLLM loads it for LLM(model=draft)
    (draft / "config.json").write_text(json.dumps(config, indent=2))
    text = Text.from_verifier(found)
    prompts = [text.prompt_ids(r) for r in read_prompts(DEMO_PROMPTS)[:PROMPTS]]
    base = {"verifier": str(found), "prompts": prompts, "max_tokens": MAX_TOKENS, "k": K}
    # "method" named: speculative_config alone makes vLLM 0.32 guess it from the path ("eagle3" in the name),
    # and this copy's path has no such word, so it would load the draft as an independent model and fail
    jobs = [dict(base, draft=None, mode="plain"), dict(base, draft=str(draft), mode="spec", method="eagle3"),
            dict(base, draft=str(draft), mode="auto", capture=True)]
    (root / "jobs.json").write_text(json.dumps(jobs))
    done = subprocess.run([sys.executable, str(ENGINE), str(root / "jobs.json"), str(root / "results.json")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    plain, spec, auto = json.loads((root / "results.json").read_text())
    for result in (plain, spec, auto):
        assert result["built"], result.get("error")
    return Verifier.from_pretrained(found), draft, prompts, plain, spec, auto


def test_vllm_serves_the_trained_pair_with_its_plain_greedy_output(pair):
    verifier, _, prompts, plain, spec, auto = pair
    ours = [generate_plain(verifier, p, MAX_TOKENS, Proposal()) for p in prompts]
    assert spec["outputs"] == auto["outputs"] == plain["outputs"] == ours


def test_every_vllm_proposal_of_the_trained_draft_equals_the_reference(pair):
    verifier, draft, prompts, _, _, auto = pair
    check = compare_proposals(verifier, reference_draft(draft, verifier), prompts, auto["outputs"],
                              auto["proposals"], K)
    print(f"\ntrained pair: proposals equal {check}")
    assert check.bad_records == 0 and check.compared >= 60 and check.all_equal, check.mismatches[:5]


def test_vllm_acceptance_counters_of_the_trained_pair_equal_the_reference(pair):
    verifier, draft, prompts, plain, spec, auto = pair
    reference = reference_draft(draft, verifier)
    per_pos, drafts = [0] * K, 0
    for prompt in prompts:
        stats = generate(verifier, reference, prompt, MAX_TOKENS, Proposal("greedy", K)).stats
        drafts += len(stats.accepted)
        per_pos = [c + sum(a > j for a in stats.accepted) for j, c in enumerate(per_pos)]
    metrics = auto["metrics"]
    theirs = {"num_drafts": metrics["vllm:spec_decode_num_drafts"],
              "accepted_per_pos": metrics["vllm:spec_decode_num_accepted_tokens_per_pos"]}
    plain_tps = sum(map(len, plain["outputs"])) / sum(plain["seconds"])
    spec_tps = sum(map(len, spec["outputs"])) / sum(spec["seconds"])
    print(f"\ntrained pair in vLLM 0.32 (float32, CPU): plain {plain_tps:.1f} tok/s, speculative {spec_tps:.1f} tok/s "
          f"({spec_tps / plain_tps:.2f}x); tau {1 + sum(per_pos) / max(drafts, 1):.2f}, accepted per position "
          f"{theirs['accepted_per_pos']} of {theirs['num_drafts']} drafts")
    assert theirs == {"num_drafts": drafts, "accepted_per_pos": per_pos}
    assert sum(per_pos) / max(drafts, 1) > 0.5  # the trained draft is accepted: tau above 1.5 (random: about 1.0)
