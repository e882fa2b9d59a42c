"""Test helpers over the builder variants: the variants themselves, the corpus helpers and the tiny verifier
are declared in conformance/generators/variants.py (the published suite is generated from them, and must not
import tests/); this module re-exports them and adds what only tests use.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: conformance.generators

from conformance.generators import variants  # noqa: E402
from conformance.generators.variants import (  # noqa: E402, F401  (re-exported for the tests)
    CORPUS,
    VARIANTS,
    VERIFIER_CONFIG,
    H,
    V,
    config_of,
    corpus_checkpoint,
    corpus_names,
    envelope,
    tensors_for,
    write_verifier,
)


def write_variant(variant: str, path: Path, std: float = 0.02, **save_kwargs) -> Path:
    from specfmt import save

    config = config_of(variant)
    return save(config, tensors_for(config, std=std), path, **save_kwargs)


DEVICE = os.environ.get("SPECFMT_TEST_DEVICE", "cpu")  # scripts/gpu_check.sh runs the runtime tests on cuda


def verifier_for(seed: int = 0, dtype=torch.float32, scale: float = 1.0, config: dict = VERIFIER_CONFIG):
    """The tiny random llama verifier of conformance.generators.variants, on the test device."""
    return variants.verifier_for(seed, dtype, scale, config, device=DEVICE)


def draft_for(variant: str, verifier, seed: int = 1):
    """A random draft of `variant` bound to `verifier`."""
    from specfmt.defaults import resolve
    from specfmt.runtime import build_draft

    resolved = resolve(config_of(variant))
    tensors = {k: (v.to(verifier.dtype) * 10 if v.is_floating_point() else v).to(verifier.device) for k, v in
               tensors_for(resolved, seed).items()}
    return build_draft(resolved, tensors, verifier)


CORPUS_VERIFIER_NAME = "org/verifier"


def corpus_verifier_facts(config: dict):
    """The verifier a corpus draft was made for, as far as its own config tells (hidden size, layers, vocabulary):
    what `specfmt upgrade` and `convert --from speculators` need beside a speculators checkpoint."""
    from specfmt.convert.common import VerifierFacts

    layer = config.get("transformer_layer_config", {})
    ids = config.get("eagle_aux_hidden_state_layer_ids") or config.get("aux_hidden_state_layer_ids") or [3]
    layers = layer["num_hidden_layers"] if config["speculators_model_type"] == "mtp" else max(ids) + 1
    return VerifierFacts({"hidden_size": config.get("target_hidden_size") or layer["hidden_size"],
                          "num_hidden_layers": layers, "vocab_size": layer["vocab_size"],
                          "architectures": ["LlamaForCausalLM"]}, CORPUS_VERIFIER_NAME)


ROOT = Path(__file__).resolve().parent.parent
DEMO_DRAFT = ROOT / "examples" / "smollm2-135m-eagle3"
DEMO_PROMPTS = ROOT / "examples" / "prompts" / "python-docs-heldout.jsonl"  # prompts the draft was not trained on


def demo_verifier_dir() -> Path:
    """Where `make demo-models` puts SmolLM2-135M-Instruct (scripts/ is not a package: its module is loaded by path)."""
    spec = importlib.util.spec_from_file_location("demo_models", ROOT / "scripts" / "demo_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.verifier_dir()


def corpus_verifier(config: dict):
    """corpus_verifier_facts as a user gives them: --verifier-name (CORPUS_VERIFIER_NAME) only where the checkpoint
    names no hub id of its own; a different name would contradict the checkpoint."""
    from specfmt import hub
    from specfmt.convert.common import VerifierFacts

    facts = corpus_verifier_facts(config)
    named = config["speculators_config"]["verifier"].get("name_or_path")
    return VerifierFacts(facts.config, None if isinstance(named, str) and hub.parse(named) else facts.name)


def fill_disk(disk: Path, leave: int) -> None:
    """A filler file that leaves about `leave` bytes free on the filesystem of `disk`."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def write_prompt_ids(path: Path, lengths: list[int], seed: int = 0) -> Path:
    """A JSONL prompt file of {"prompt_ids": [...]} records, one per length, ids drawn uniformly from the tiny
    verifier's vocabulary with a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    path.write_text("".join(json.dumps({"prompt_ids": torch.randint(0, V, (n,), generator=g).tolist()}) + "\n"
                            for n in lengths))
    return path


def datagen_setup(root: Path) -> tuple:
    """What the datagen tests start from: a tiny float32 verifier with a tokenizer under `root`, and 30 prompts of
    3 to 7 ids (25 of them for training at a held-out fraction of 0.1): (root, verifier, its text, prompt file)."""
    from specfmt.text import Text
    from specfmt.verifier import Verifier

    verifier_dir = write_verifier(root / "verifier", tokenizer=True, scale=5)
    prompts = write_prompt_ids(root / "prompts.jsonl", [3 + i % 5 for i in range(30)])
    return root, Verifier.from_pretrained(verifier_dir), Text.from_verifier(verifier_dir), prompts


def sigint_default() -> None:
    """The preexec_fn of a child that a test interrupts: SIGINT back to its default action, so the child's Python
    turns it into KeyboardInterrupt even when the test run was started with SIGINT ignored (a background job of a
    non-interactive shell, nohup), which every child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
