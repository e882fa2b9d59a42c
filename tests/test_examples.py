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


def load_demo(monkeypatch, result: dict, loads: tuple = (None, None), cores: int = 2):
    """scripts/demo.py with evaluate() answering `result`, the load average reading `loads` before and after the
    timed part, and `cores` usable cores."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("demo_under_test", ROOT / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    monkeypatch.setattr(demo, "evaluate", lambda *args, **kwargs: result)
    monkeypatch.setattr(demo, "format_text", lambda r: "table")
    readings = iter(loads)
    monkeypatch.setattr(demo, "load_average", lambda: next(readings))
    monkeypatch.setattr(demo, "usable_cores", lambda: cores)
    return demo


LOADED = "warning: load average 8.00 exceeds the 2 usable cores: ... the speedup are unreliable"


def test_the_demo_says_next_to_the_speedup_that_a_loaded_machine_made_it_unreliable(monkeypatch, capsys):
    demo = load_demo(monkeypatch, {"bound": 0.63, "speedup": 3.24, "tau": 2.0}, loads=(8.0, 7.5))
    assert demo.measure(None, None, [[1]], [0])
    lines = capsys.readouterr().out.splitlines()
    speedup = next(i for i, line in enumerate(lines) if "measured 3.24x" in line)
    assert lines[speedup + 1].strip() == (
        "warning: load average 8.00 and 7.50 (before and after timing) exceeds the 2 usable cores: the speedup is "
        f"unreliable and not judged on this run; tau is, against {demo.MIN_TAU}")


def test_a_load_above_the_cores_before_the_timing_only_still_warns(monkeypatch):
    demo = load_demo(monkeypatch, {})
    assert demo.load_warning(2.5, 1.0, 2).startswith("warning: load average 2.50 and 1.00 ")
    assert demo.load_warning(1.0, 2.5, 2).startswith("warning: load average 1.00 and 2.50 ")


def test_a_load_at_most_the_usable_cores_or_unknown_gives_no_warning(monkeypatch):
    demo = load_demo(monkeypatch, {})
    assert demo.load_warning(2.0, 2.0, 2) is None
    assert demo.load_warning(None, None, 1) is None
    assert demo.load_warning(None, 4.0, 16) is None
    assert demo.load_warning(None, 4.0, 2).startswith("warning: load average 4.00 (before and after timing) ")


def test_the_demo_on_a_quiet_machine_prints_no_warning_and_judges_the_speedup(monkeypatch, capsys):
    demo = load_demo(monkeypatch, {"bound": 1.4, "speedup": 0.9, "tau": 2.0}, loads=(0.4, 1.9))
    assert not demo.measure(None, None, [[1]], [0])
    out = capsys.readouterr().out
    assert "warning" not in out
    assert "demo check failed: speedup 0.900x is not above 1 on a quiet machine" in out


def test_a_speedup_below_one_on_a_loaded_machine_is_a_warning_not_a_failure(monkeypatch, capsys):
    result = {"bound": 1.4, "speedup": 0.8}
    demo = load_demo(monkeypatch, result, loads=(3.0, 3.0))
    result["tau"] = demo.MIN_TAU
    assert demo.measure(None, None, [[1]], [0])
    out = capsys.readouterr().out
    assert "warning: load average 3.00 and 3.00" in out and "demo check failed" not in out


def test_the_demo_fails_a_tau_just_below_its_floor_even_with_a_fast_speedup(monkeypatch, capsys):
    result = {"bound": 2.0, "speedup": 1.9}
    demo = load_demo(monkeypatch, result, loads=(0.1, 0.1))
    result["tau"] = demo.MIN_TAU - 0.001
    assert not demo.measure(None, None, [[1]], [0])
    assert f"demo check failed: tau {demo.MIN_TAU - 0.001:.3f} is below {demo.MIN_TAU}" in capsys.readouterr().out


def test_the_demo_judge_reads_its_floor_from_min_tau(monkeypatch):
    demo = load_demo(monkeypatch, {})
    monkeypatch.setattr(demo, "MIN_TAU", 1.9)
    assert demo.judge({"tau": 1.89, "speedup": 2.0}, None) == ["tau 1.890 is below 1.9"]
    assert demo.judge({"tau": 1.9, "speedup": 2.0}, None) == []


def test_the_demo_passes_a_tau_at_its_bound_on_a_loaded_machine_whatever_the_speedup(monkeypatch):
    demo = load_demo(monkeypatch, {})
    assert demo.judge({"tau": demo.MIN_TAU, "speedup": 0.5}, LOADED) == []


def test_the_demo_judges_a_quiet_machines_speedup_of_one_a_failure(monkeypatch):
    demo = load_demo(monkeypatch, {})
    assert demo.judge({"tau": demo.MIN_TAU + 1, "speedup": 1.0}, None) == [
        "speedup 1.000x is not above 1 on a quiet machine"]
    assert demo.judge({"tau": demo.MIN_TAU + 1, "speedup": 1.01}, None) == []
