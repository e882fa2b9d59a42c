"""The pre-commit hooks of .pre-commit-hooks.yaml: what they match, and their entry run as pre-commit runs it
(changed file names appended) on a clean and on a broken checkpoint."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
DRAFT = ROOT / "conformance" / "fixtures" / "numerics" / "eagle3"


def run_hook(hook: dict, files: list[Path]) -> subprocess.CompletedProcess:
    words = shlex.split(hook["entry"])
    assert words[0] == "specfmt"
    return subprocess.run([sys.executable, "-m", "specfmt", *words[1:], *map(str, files)], capture_output=True,
                          text=True, timeout=120)


def test_the_hooks_are_the_two_validate_profiles():
    assert {h["id"] for h in HOOKS} == {"specfmt-validate", "specfmt-validate-compat"}
    assert all(h["language"] == "python" for h in HOOKS)


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h["id"])
def test_a_hook_matches_a_checkpoints_config_and_weights_and_nothing_else(hook):
    files = re.compile(hook["files"])
    for name in ("config.json", "drafts/a/config.json", "drafts/a/model.safetensors",
                 "drafts/a/model-00001-of-00002.safetensors", "drafts/a/model.safetensors.index.json"):
        assert files.search(name), name
    for name in ("README.md", "drafts/a/tokenizer.json", "drafts/a/generation_config.json"):
        assert not files.search(name), name


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h["id"])
def test_a_hook_passes_a_clean_checkpoint_once_whatever_files_changed(hook):
    done = run_hook(hook, [DRAFT / "config.json", DRAFT / "model.safetensors"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("valid under") == 1


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h["id"])
def test_a_hook_fails_a_broken_checkpoint(hook, tmp_path):
    broken = shutil.copytree(DRAFT, tmp_path / "draft")
    config = json.loads((broken / "config.json").read_text())
    config["draft_vocab_size"] = "many"
    (broken / "config.json").write_text(json.dumps(config))
    done = run_hook(hook, [broken / "config.json"])
    assert done.returncode == 1 and "config.type" in done.stdout
