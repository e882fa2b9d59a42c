"""The example checkpoints that `make demo` shows."""

import subprocess
import sys
from pathlib import Path

import pytest

from specfmt import validate

ROOT = Path(__file__).resolve().parent.parent


def test_the_clean_example_is_strict_and_clean():
    assert validate(ROOT / "examples" / "eagle3-clean", "strict", scan_values=True).findings == []


def test_the_broken_example_shows_each_of_its_defects():
    report = validate(ROOT / "examples" / "eagle3-broken", "compat", scan_values=True)
    assert report.codes() == {
        ("hazard.aux_layer_ids_order", "/eagle_aux_hidden_state_layer_ids"),
        ("config.aux_layer_range", "/eagle_aux_hidden_state_layer_ids/3"),
        ("hazard.default_conflict", "/norm_before_residual"),
        ("hazard.d2t_missing", "/d2t"),
        ("layout.fc_width", "/fc.weight/shape"),
        ("hazard.nonfinite", "/verifier_lm_head.weight"),
        ("hazard.stray_verifier_tensor", "/verifier_lm_head.weight"),
    }
    assert len(report.errors) == 2


@pytest.mark.slow  # the demo runs SmolLM2-135M (make demo-models): never in the default run; CI runs make demo
def test_the_demo_runs_and_reports_every_step_as_expected():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo: 5/5 steps behaved as expected" in proc.stdout
