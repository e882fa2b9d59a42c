"""The conformance suite's schema- and checkpoint-level data: regenerated exactly, listed with sha256,
valid against its meta schemas, small, and reproduced by the reference implementation in-process
(the counterpart of running the reference adapter through the runner)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from specfmt import validate, validate_config
from specfmt.schemas import CODES

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "conformance"
sys.path.insert(0, str(REPO))  # the generators are the package conformance.generators

from conformance.generators.check import compare  # noqa: E402
from conformance.generators.suite import write_suite  # noqa: E402

MANIFEST = json.loads((SUITE / "manifest.json").read_text(encoding="utf-8"))
GROUP_FILES = sorted({c["path"] for c in MANIFEST["cases"] if c["level"] == "schema"})
CHECKPOINT_CASES = [c["path"] for c in MANIFEST["cases"] if c["level"] == "checkpoint"]
NUMERICS_CASES = [c["path"] for c in MANIFEST["cases"] if c["level"] == "numerics"]
SUITE_DATA = ("cases", "fixtures", "manifest.json", "SUITE_VERSION")
ONE_GOLDEN = "cases/numerics/1.0/num.verifier-forward.aux-1-3-5/expected.safetensors"
ONE_TENSOR_FILE = "cases/checkpoint/1.0/ckpt.clean.eagle3/checkpoint/model.safetensors"


def read(rel: str):
    return json.loads((SUITE / rel).read_text(encoding="utf-8"))


def meta_validator(name: str) -> Draft202012Validator:
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((SUITE / "meta").glob("*.schema.json"))]
    registry = Registry().with_resources([(d["$id"], Resource.from_contents(d)) for d in docs])
    return Draft202012Validator(json.loads((SUITE / "meta" / name).read_text(encoding="utf-8")), registry=registry)


def verdict(report) -> tuple[bool, set[tuple[str, str, str]]]:
    return report.ok, {(f.code, f.pointer, f.severity) for f in report.findings}


def stated(case: dict) -> tuple[bool, set[tuple[str, str, str]]]:
    return case["valid"], {(f["code"], f["pointer"], f["severity"]) for f in case["findings"]}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """The suite regenerated once: (its root, its manifest)."""
    root = tmp_path_factory.mktemp("fresh")
    return root, write_suite(root, (SUITE / "SUITE_VERSION").read_text(encoding="utf-8").strip())


@pytest.fixture
def suite_copy(tmp_path):
    for name in SUITE_DATA:
        source, target = SUITE / name, tmp_path / name
        shutil.copytree(source, target) if source.is_dir() else shutil.copy(source, target)
    return tmp_path


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# Other CPUs take other kernel paths (AVX2, AVX-512, scalar) and thread counts; the check must hold on each.
KERNELS = {"native": {}, "default-kernels-1-thread": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}}


@pytest.mark.parametrize("kernels", KERNELS)
def test_check_passes_on_the_committed_data(kernels):
    proc = subprocess.run([sys.executable, "-m", "conformance.generators", "--check"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **KERNELS[kernels]})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_committed_data_equals_a_fresh_generation(fresh):
    assert compare(SUITE, *fresh) == []


@pytest.mark.parametrize("rel, offset", [
    (ONE_TENSOR_FILE, -1),  # the last byte of the last tensor's data
    ("cases/schema/1.0/rules.json", 100),
    ("cases/checkpoint/1.0/ckpt.header.json-not-json/checkpoint/model.safetensors", 9),
    ("cases/checkpoint/1.0/ckpt.layout.missing/case.json", 20),
])
def test_flipping_one_byte_of_a_committed_file_makes_check_fail(suite_copy, fresh, rel, offset):
    target = suite_copy / rel
    flip_byte(target, offset if offset >= 0 else target.stat().st_size + offset)
    problems = compare(suite_copy, *fresh)
    assert any(line.startswith(rel) for line in problems), problems
    assert f"manifest.json: sha256 of {rel} does not match the file" in problems


def test_a_changed_tensor_value_fails_check_even_with_a_rehashed_manifest(suite_copy, fresh):
    target = suite_copy / ONE_TENSOR_FILE
    flip_byte(target, target.stat().st_size - 1)
    manifest = json.loads((suite_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][ONE_TENSOR_FILE] = hashlib.sha256(target.read_bytes()).hexdigest()
    (suite_copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    problems = compare(suite_copy, *fresh)
    assert len(problems) == 1 and "tensor" in problems[0] and "differs" in problems[0], problems


def test_the_check_cli_exits_1_with_the_difference_on_a_flipped_copy(suite_copy):
    flip_byte(suite_copy / ONE_TENSOR_FILE, (suite_copy / ONE_TENSOR_FILE).stat().st_size - 1)
    proc = subprocess.run([sys.executable, "-m", "conformance.generators", "--check", "--root", str(suite_copy)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert ONE_TENSOR_FILE in proc.stdout and "STALE" in proc.stdout


def test_every_group_file_validates_against_its_meta_schema():
    validator = meta_validator("schema-group.schema.json")
    for rel in GROUP_FILES:
        assert [e.message for e in validator.iter_errors(read(rel))] == [], rel


def test_every_case_json_validates_against_its_meta_schema():
    validator = meta_validator("checkpoint-case.schema.json")
    for rel in CHECKPOINT_CASES:
        assert [e.message for e in validator.iter_errors(read(f"{rel}/case.json"))] == [], rel


def test_the_manifest_validates_against_its_meta_schema():
    assert [e.message for e in meta_validator("manifest.schema.json").iter_errors(MANIFEST)] == []


def test_the_meta_schema_refuses_a_valid_verdict_with_an_error_finding():
    case = read(f"{CHECKPOINT_CASES[0]}/case.json")
    case.update(valid=True, findings=[{"code": "layout.missing", "pointer": "/x", "file": "f", "severity": "error"}])
    assert not meta_validator("checkpoint-case.schema.json").is_valid(case)


def test_case_ids_are_unique_and_match_their_place():
    ids = [c["id"] for c in MANIFEST["cases"]]
    assert len(ids) == len(set(ids))
    for rel in GROUP_FILES:
        for group in read(rel):
            assert len({t["id"] for t in group["tests"]}) == len(group["tests"]), group["id"]
    for rel in CHECKPOINT_CASES:
        assert read(f"{rel}/case.json")["id"] == Path(rel).name


def test_the_manifest_lists_every_file_with_its_sha256():
    present = {p.relative_to(SUITE).as_posix() for top in ("cases", "fixtures") if (SUITE / top).is_dir()
               for p in (SUITE / top).rglob("*") if p.is_file()}
    assert set(MANIFEST["files"]) == present
    for rel, digest in MANIFEST["files"].items():
        assert hashlib.sha256((SUITE / rel).read_bytes()).hexdigest() == digest, rel


def suite_files() -> list[Path]:
    """The suite: cases, fixtures, meta schemas, manifest, runner and generators. The adapters (the
    implementations under test), results/ (their committed reports), build outputs and the runner package's
    links to the suite files (specfmt_conformance/suite, counted once, where they lie) are not part of it."""
    links = SUITE / "specfmt_conformance" / "suite"
    return sorted(p for p in SUITE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.relative_to(SUITE).parts[0] not in ("adapters", "results", "build")
                  and not p.is_relative_to(links) and not any(part.endswith(".egg-info") for part in p.parts))


def test_the_suite_an_implementer_downloads_is_under_2_5_mb_compressed():
    """Measured as a deflate zip, as a wheel or an archive ships it. Most unpacked bytes are the zero data of
    header-only checkpoint fixtures, which a download compresses away. Suite 5.0.0 (732 cases, 591 in 4.0.0: the
    rule coverage map's, the mutants', the refusals' and the trees' cases) measured 2.11 MB and 8.37 MB unpacked;
    the bounds leave it about a fifth to grow before its fixtures must shrink."""
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in suite_files():
            z.write(path, path.relative_to(SUITE).as_posix())
    assert len(archive.getvalue()) < 2_500_000


def test_the_unpacked_suite_is_under_10_mb():
    assert sum(p.stat().st_size for p in suite_files()) < 10_000_000


def test_every_spec_anchor_names_a_rule_that_exists():
    anchors = {a for rel in GROUP_FILES for g in read(rel) for a in g["spec"]}
    anchors |= {a for rel in CHECKPOINT_CASES + NUMERICS_CASES for a in read(f"{rel}/case.json")["spec"]}
    for anchor in sorted(anchors):
        page, _, rule = anchor.partition("#")
        text = (REPO / page).read_text(encoding="utf-8")
        assert not rule or f'<a id="{rule}"></a>' in text, anchor


def test_the_checkpoint_level_covers_every_header_index_and_weights_code():
    found = {f["code"] for rel in CHECKPOINT_CASES for f in read(f"{rel}/case.json")["findings"]}
    wanted = {code for code in CODES if re.match(r"(header|index|weights)\.", code)}
    assert wanted <= found, wanted - found


def test_the_schema_level_stays_a_few_hundred_tests():
    assert 200 <= sum(c["level"] == "schema" for c in MANIFEST["cases"]) <= 500


@pytest.mark.parametrize("rel", GROUP_FILES)
def test_the_reference_reproduces_every_schema_verdict(rel):
    for group in read(rel):
        for test in group["tests"]:
            assert verdict(validate_config(test["data"], group["profile"])) == stated(test), (group["id"], test["id"])


@pytest.mark.parametrize("rel", CHECKPOINT_CASES, ids=lambda rel: Path(rel).name)
def test_the_reference_reproduces_every_checkpoint_verdict(rel):
    case = read(f"{rel}/case.json")
    checkpoint = SUITE / rel / case["checkpoint"]
    report = validate(checkpoint, case["profile"], scan_values=case.get("scan_values", False))
    assert verdict(report) == stated(case)
    files = {(f.code, f.pointer, "." if f.file == str(checkpoint) else f.file) for f in report.findings}
    assert files == {(f["code"], f["pointer"], f["file"]) for f in case["findings"]}


def test_every_numerics_case_states_its_tolerance_and_its_distance_from_a_tie():
    operations = {read(f"{rel}/case.json")["operation"] for rel in NUMERICS_CASES}
    assert operations == {"verifier_forward", "propose", "draft_forward", "verify_greedy", "verify_sampling",
                          "verify_top_k", "process_logits", "generate", "tree_attention", "propose_tree",
                          "verify_tree_greedy", "verify_tree_sampling", "generate_tree"}
    for rel in NUMERICS_CASES:
        case = read(f"{rel}/case.json")
        for rule in case["outputs"].values():
            assert rule == {"compare": "exact"} or {"rtol", "atol"} <= rule.keys(), (rel, rule)
        if case.get("refusal"):  # a request refused (PROTOCOL.md 3.4): no output, no golden
            assert (case["expected"], case["outputs"], "golden" in case) == (None, {}, False), rel
            continue
        if "exact_boundary" in case["golden"]:  # on a boundary by design, in values exact in binary (mutants.py)
            continue
        margins = [case["golden"][k] for k in ("min_top2_margin", "min_uniform_margin", "min_mass_margin")
                   if k in case["golden"]]
        assert margins and min(margins) >= 1e-3, rel


def _scale_golden(path: Path, factor: float) -> None:
    from safetensors.torch import load

    from specfmt.safetensors_file import write_tensors

    raw = path.read_bytes()
    tensors = load(raw)  # from bytes: a memory map of the file would break when it is rewritten
    tensors["logits"] = tensors["logits"] * factor
    write_tensors(path, tensors, json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])["__metadata__"])


@pytest.mark.parametrize("factor, stale", [(1 + 1e-6, False), (1 + 1e-2, True)])
def test_check_compares_numerics_goldens_within_the_case_tolerance(suite_copy, fresh, factor, stale):
    _scale_golden(suite_copy / ONE_GOLDEN, factor)
    problems = [p for p in compare(suite_copy, *fresh) if "sha256" not in p]
    assert bool(problems) == stale, problems


def _edit_case(path: Path, edit) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    edit(case)
    path.write_text(json.dumps(case), encoding="utf-8")


@pytest.mark.parametrize("factor, stale", [(1 + 1e-4, False), (1 + 1e-2, True)])
def test_check_compares_a_recorded_margin_within_its_last_digit(suite_copy, fresh, factor, stale):
    rel = Path(ONE_GOLDEN).parent / "case.json"
    _edit_case(suite_copy / rel, lambda c: c["golden"].update(min_top2_margin=c["golden"]["min_top2_margin"] * factor))
    problems = [p for p in compare(suite_copy, *fresh) if "sha256" not in p]
    assert bool(problems) == stale, problems


def test_check_compares_a_case_tolerance_exactly(suite_copy, fresh):
    rel = Path(ONE_GOLDEN).parent / "case.json"
    _edit_case(suite_copy / rel, lambda c: c["outputs"]["logits"].update(atol=c["outputs"]["logits"]["atol"] * 1.0001))
    problems = [p for p in compare(suite_copy, *fresh) if "sha256" not in p]
    assert problems and problems[0].startswith(rel.as_posix()), problems
