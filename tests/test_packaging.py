"""The two distributions as a user installs them: wheels built from this repository, installed into fresh
virtual environments and run from a directory outside it (make dist-test; kept out of the default run).

- specfmt alone (the core) validates, inspects and prints schemas, and torch is not installed with it;
- specfmt[runtime] generates;
- specfmt-conformance alone lists its suite, and certifies the reference adapter of an installed
  specfmt[runtime] with the suite it ships.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from links import relative_links

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
FIXTURES = ROOT / "conformance" / "fixtures" / "numerics"
DRAFT = ROOT / "examples" / "smollm2-135m-eagle3"

pytestmark = pytest.mark.packaging


def run(args: list, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """Both distributions built as `make dist` builds them (the sdist, then the wheel from it): the directory and
    the build's output."""
    out = tmp_path_factory.mktemp("dist")
    logs = [run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project], cwd=ROOT)
            for project in (ROOT, ROOT / "conformance")]
    return out, "".join(done.stdout + done.stderr for done in logs)


@pytest.fixture(scope="module")
def wheels(built) -> dict[str, Path]:
    found = {p.name.split("-")[0]: p for p in built[0].glob("*.whl")}
    assert set(found) == {"specfmt", "specfmt_conformance"}, found
    return found


def test_make_dist_declares_its_package_data_so_setuptools_warns_of_no_ignored_package(built):
    assert "would be ignored" not in built[1]
    assert "is absent from the `packages` configuration" not in built[1]


def test_each_wheel_long_description_has_no_relative_link_and_shows_pip_install(wheels):
    import zipfile

    for name, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as z:
            metadata = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        description = metadata.split("\n\n", 1)[1]
        assert f"pip install {name.replace('_', '-')}" in description, name
        assert relative_links(description) == [], name


def make_env(path: Path, *requirements: str) -> Path:
    """A fresh virtual environment at `path` with `requirements` installed under the constraints; its bin/."""
    venv.create(path, with_pip=True)
    bin_dir = path / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", "-c", CONSTRAINTS, *requirements], cwd=path)
    return bin_dir


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("elsewhere")  # a working directory with no checkout above it


@pytest.fixture(scope="module")
def core(wheels, tmp_path_factory) -> Path:
    return make_env(tmp_path_factory.mktemp("core") / "env", str(wheels["specfmt"]))


@pytest.fixture(scope="module")
def runtime(wheels, tmp_path_factory) -> Path:
    return make_env(tmp_path_factory.mktemp("runtime") / "env", f"specfmt[runtime] @ {wheels['specfmt'].as_uri()}")


@pytest.fixture(scope="module")
def conformance(wheels, tmp_path_factory) -> Path:
    return make_env(tmp_path_factory.mktemp("conformance") / "env", str(wheels["specfmt_conformance"]))


def test_the_core_install_validates_inspects_and_prints_schemas_without_torch(core, outside):
    assert "valid under strict" in run([core / "specfmt", "validate", DRAFT, "--profile", "strict"], outside).stdout
    assert "eagle3" in run([core / "specfmt", "inspect", DRAFT], outside).stdout
    assert json.loads(run([core / "specfmt", "schema", "eagle3"], outside).stdout)["algorithm"] == "eagle3"
    no_torch = run([core / "python", "-c", "import torch"], outside, check=False)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr


def test_the_runtime_extra_generates(runtime, outside):
    done = run([runtime / "specfmt", "generate", "--verifier", FIXTURES / "verifier", "--draft", FIXTURES / "eagle3",
                "--prompt-ids", "3", "14", "15", "9", "--max-new-tokens", "8", "--format", "json"], outside)
    assert len(json.loads(done.stdout)["tokens"]) == 8


def test_the_conformance_distribution_alone_lists_the_suite_it_ships(conformance, outside):
    listed = run([conformance / "specfmt-conformance", "list"], outside).stdout.splitlines()
    manifest = json.loads((ROOT / "conformance" / "manifest.json").read_text(encoding="utf-8"))
    assert len(listed) == len(manifest["cases"])
    assert run([conformance / "python", "-c", "import specfmt"], outside, check=False).returncode != 0


def test_the_installed_runner_certifies_the_installed_reference_adapter(conformance, runtime, outside):
    report = outside / "report"
    adapter = f"{runtime / 'python'} -m specfmt.conformance_adapter"
    run([conformance / "specfmt-conformance", "run", "--adapter", adapter, "--report", report], outside)
    header = json.loads((report / "report.json").read_text(encoding="utf-8"))["header"]
    assert header["certifying"] is True
