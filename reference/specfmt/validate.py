"""validate(path, profile) -> Report: every finding for one checkpoint directory.

Reads config.json and the safetensors headers only; tensor data is read only with scan_values.
Spec: spec/index.md#GEN-5
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from specfmt import config_checks, json_text, layout, values
from specfmt.defaults import resolve
from specfmt.files import shard_name_ok
from specfmt.findings import PROFILES, Finding, Report, finding, mismatch, pointer, severity, under
from specfmt.safetensors_header import TensorInfo, read_header
from specfmt.schemas import ALGORITHMS, SAFETENSORS

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def validate(path: str | Path, profile: str = "compat", scan_values: bool = False,
             progress: Callable[[str], None] | None = None) -> Report:
    """Validate the checkpoint directory at `path` under `profile` ("strict" or "compat"); `progress` receives a
    line per tensor that scan_values reads.

    Spec: spec/index.md#GEN-5
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    root = Path(path)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        absent = finding("io.not_found", str(path), "", f"checkpoint path {what}")
        return Report(str(path), profile, under([absent], profile))
    config, findings = read_json(root / CONFIG, CONFIG, "config")
    resolved: dict[str, Any] = {}
    if not findings:  # parsed: a config.json that is null is a config.type finding, not an absent file
        findings += config_checks.schema_findings(config, profile)
    if isinstance(config, dict):
        resolved = resolve(config)
        findings += config_checks.semantic_findings(config, resolved)
    config_ok = not any(severity(f.code, profile) == "error" for f in findings)
    algorithm = resolved.get("speculators_model_type")
    algorithm = algorithm if isinstance(algorithm, str) and algorithm in ALGORITHMS else None
    found, weights_file, weight_findings, malformed = read_weights(root, needs_weights=algorithm != "ngram")
    findings += weight_findings
    report = Report(str(path), profile, [], algorithm=algorithm)
    # Binding runs only on a complete tensor list; otherwise every unread tensor would be "missing".
    if algorithm is not None and found is not None:
        binding = layout.bind(algorithm, resolved, found, weights_file, config_ok, malformed)
        findings += binding.findings
        report.symbols, report.tensors = binding.symbols, binding.rows
        if scan_values:
            read = {row["name"] for row in binding.rows if row["role"] and row["status"] in ("ok", "mismatch")}
            findings += values.scan(root, found, read, binding.symbols, progress)
    report.findings = _unique(_fold_required(under(findings, profile)))  # the severity policy, applied once
    return report


def _unique(findings: list[Finding]) -> list[Finding]:
    """One finding per (file, pointer, code), the first reported; sorted."""
    seen: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        seen.setdefault((f.file, f.pointer, f.code), f)
    return sorted(seen.values())


def validate_config(config: Any, profile: str = "compat") -> Report:
    """Validate a config.json document alone: schema findings and the semantic checks that need no
    tensors. Spec: spec/config.md"""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    findings = config_checks.schema_findings(config, profile)
    if isinstance(config, dict):
        findings += config_checks.semantic_findings(config, resolve(config))
    model_type = config.get("speculators_model_type") if isinstance(config, dict) else None
    return Report(CONFIG, profile, _unique(_fold_required(under(findings, profile))),
                  algorithm=model_type if isinstance(model_type, str) and model_type in ALGORITHMS else None)


def _fold_required(findings: list[Finding]) -> list[Finding]:
    """Where the schema already reports `config.required` at a pointer, a hazard about the same
    absent field is not reported again (strict only: compat requires none of those fields).

    Spec: spec/index.md#GEN-4
    """
    required = {f.pointer for f in findings if f.code == "config.required"}
    return [f for f in findings if not (f.code.startswith("hazard.") and f.file == CONFIG and f.pointer in required)]


def read_json(path: Path, file: str, prefix: str) -> tuple[Any, list[Finding]]:
    """config.json or the shard index through the one strict reader (specfmt.json_text). Each broken rule
    of config.json has its own code; the index reports every one as `index.json`. Spec: spec/index.md#GEN-7"""
    if not path.is_file():
        return None, [finding("config.missing" if prefix == "config" else "index.json", file, "",
                              f"{file} is absent")]
    try:
        return json_text.read(path, SAFETENSORS["config_max_bytes"], file), []
    except json_text.JsonProblem as e:
        return None, [finding(f"config.{e.kind}" if prefix == "config" else "index.json", file, "", str(e))]
    except OSError as e:  # replaced by a FIFO or removed since the check above: files.FileRefused
        return None, [finding("config.missing" if prefix == "config" else "index.json", file, "",
                              f"{file} is not readable: {e}")]


def read_weights(root: Path, needs_weights: bool = True
                 ) -> tuple[dict[str, TensorInfo] | None, str, list[Finding], set[str]]:
    """The tensors of the checkpoint, from a single file or a sharded index; pickles are refused.

    The tensor map is None when some weights file or header could not be read at all. The set holds
    the names of malformed header entries: stored, but left out of the map (LAY-3).

    Spec: spec/layout.md#SFT-1
    """
    if (root / INDEX).exists():
        found, findings, malformed = _read_sharded(root)
        return found, INDEX, findings, malformed
    if (root / SINGLE).is_file():
        tensors, findings, malformed = read_header(str(root / SINGLE), SINGLE)
        if tensors is None:
            return None, SINGLE, findings, set()
        found, dup = _collect(tensors)
        return found, SINGLE, findings + dup, set(malformed)
    pickles = sorted(p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        return None, pickles[0], [finding("weights.pickle", pickles[0], "",
                                        f"only pickle weights {pickles}: refused, never unpickled; convert them to "
                                        "safetensors", found=pickles)], set()
    if not needs_weights:
        return {}, SINGLE, [], set()
    others = sorted(p.name for p in root.glob("*.safetensors"))
    hint = f"; found {others}" if others else ""
    return None, SINGLE, [finding("weights.missing", SINGLE, "",
                                  f"neither {SINGLE} nor {INDEX} is present{hint}")], set()


def _collect(tensors: list[TensorInfo]) -> tuple[dict[str, TensorInfo], list[Finding]]:
    found: dict[str, TensorInfo] = {}
    findings = []
    for t in tensors:
        if t.name in found:
            findings.append(finding("index.mismatch", t.file, pointer(t.name),
                                    f"tensor {t.name} is stored in both {found[t.name].file} and {t.file}"))
        else:
            found[t.name] = t
    return found, findings


def _read_sharded(root: Path) -> tuple[dict[str, TensorInfo] | None, list[Finding], set[str]]:
    index, findings = read_json(root / INDEX, INDEX, "index")
    if findings:  # unreadable; an index that is null is reported below, with any other that is no object
        return None, findings, set()
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        return None, [finding("index.json", INDEX, "/weight_map",
                              "weight_map must map tensor names to shard files")], set()
    tensors: list[TensorInfo] = []
    malformed: set[tuple[str, str]] = set()  # (shard, name)
    readable: set[str] = set()  # shards whose header parsed, a header with no tensor included
    complete = True
    for shard in sorted(set(weight_map.values())):
        if not shard_name_ok(shard):
            complete = False
            findings.append(finding("index.path", INDEX, "/weight_map",
                                    mismatch("shard name", "a file name in the checkpoint directory", shard),
                                    found=shard))
        elif not (root / shard).is_file():
            complete = False
            findings.append(finding("index.missing_shard", INDEX, "/weight_map",
                                    f"shard {shard} named by the index is absent", found=shard))
        else:
            shard_tensors, shard_findings, shard_malformed = read_header(str(root / shard), shard)
            complete = complete and shard_tensors is not None
            readable |= {shard} if shard_tensors is not None else set()
            tensors += shard_tensors or []
            findings += shard_findings
            malformed |= {(shard, name) for name in shard_malformed}
    found, dup = _collect(tensors)
    findings += dup
    for name, shard in sorted(weight_map.items()):
        where = found.get(name)
        if where is None and shard in readable and (shard, name) not in malformed:  # a malformed entry is stored
            findings.append(finding("index.mismatch", INDEX, pointer("weight_map", name),
                                    f"the index places {name} in {shard}, whose header lacks it"))
        elif where is not None and where.file != shard:
            findings.append(finding("index.mismatch", INDEX, pointer("weight_map", name),
                                    mismatch(f"{name} shard", shard, where.file)))
    for name in sorted(set(found) - set(weight_map)):
        findings.append(finding("index.mismatch", found[name].file, pointer(name),
                                f"{name} is stored in {found[name].file} but absent from the index"))
    return (found if complete else None), findings, {name for _, name in malformed}
