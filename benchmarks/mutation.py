"""Mutation testing with the conformance suite alone as the killer (`make mutation`, issue 23).

mutmut mutates the reference's validator, layout binding, expression language and verification (MODULES), and each
mutant is graded by the conformance suite run in-process through the runner's executors
(benchmarks/mutation_killer.py): no unit test takes part. mutmut forks one worker per mutant from a process that has
imported everything, runs only the cases that call the mutated function (its coverage map) and stops at the first
failing case, so a mutant costs a fraction of a second instead of a suite run through a subprocess.

The work happens in test-output/mutation (ignored by git), on the committed tree: the reference, the suite, its
runner and the killer as HEAD holds them (head/), the reference laid out as mutmut expects (src/specfmt), and
mutmut's own state, which makes a run resumable: `make mutation` again after an interruption tests only the mutants
without a verdict. A changed reference starts afresh; a changed suite retests only the mutants that survived.

The report (bench/mutation/report.json and report.md) gives the kill rate per module and every surviving mutant
with the reason it is equivalent, read from benchmarks/mutation_equivalents.json, keyed by module, function, the
line as written and the line as mutated (no line numbers, so a key survives edits elsewhere in the file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "test-output" / "mutation"
OUT = ROOT / "bench" / "mutation"
DOCS = ROOT / "docs" / "conformance" / "mutation.md"
EQUIVALENTS = ROOT / "benchmarks" / "mutation_equivalents.json"
MODULES = ("validate", "config_checks", "layout", "binding", "expr", "verification")
TARGET = 0.90  # the floor for every module
DETECTED = ("killed", "timeout", "segfault")  # the suite failed, hung past the CPU limit, or crashed the adapter

MUTMUT_CONFIG = """\
# Written by benchmarks/mutation.py; do not edit.
[tool.mutmut]
source_paths = ["src"]
only_mutate = [{only}]
pytest_add_cli_args_test_selection = ["tests/"]
pytest_add_cli_args = ["-p", "no:cacheprovider"]
use_git_change_detection = false

[tool.pytest.ini_options]
filterwarnings = ["ignore:Failed to initialize NumPy:UserWarning"]
"""

# Which levels grade a mutant, by module (the levels whose requests reach it; the others only cost time): the
# verifier binding (binding.py) runs when a numerics `load` pairs a draft with its verifier, verification only in
# the numerics operations; the validator's modules answer `validate`. Within them the cheap level first: a mutant
# dies at its first failing case (pytest -x).
LEVELS_BY_MODULE = {"verification": ("numerics",), "binding": ("numerics",)}
LEVELS = ("schema", "checkpoint")
CONFTEST = f"""\
# Written by benchmarks/mutation.py; do not edit.
import os

LEVELS_BY_MODULE = {LEVELS_BY_MODULE!r}
LEVELS = {LEVELS!r}
RANK = {{"schema": 0, "checkpoint": 1, "numerics": 2}}


def pytest_collection_modifyitems(config, items):
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    module = mutant.split(".")[1] if mutant.startswith("specfmt.") else None
    levels = LEVELS_BY_MODULE.get(module, LEVELS) if module else tuple(RANK)
    kept = [item for item in items if item.callspec.params["case"].level in levels]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = sorted(kept, key=lambda item: RANK[item.callspec.params["case"].level])
"""


def tree(*paths: str) -> str:
    """The git object ids of committed paths: what a verdict depends on, as committed."""
    return " ".join(subprocess.run(["git", "rev-parse", f"HEAD:{p}"], cwd=ROOT, capture_output=True, text=True,
                                   check=True).stdout.strip() for p in paths)


def prepare(work: Path, fresh: bool) -> bool:
    """Lay out the work directory from the committed tree (HEAD); True when the suite, its runner or the killer
    changed since the last run's verdicts.

    HEAD, not the working tree: a suite halfway through its regeneration, or a reference halfway through an edit,
    would turn every verdict into noise. A changed reference discards mutmut's state (its mutants are of other code);
    a changed suite keeps it, and the mutants that survived are tested again against the new cases (main)."""
    source = tree("reference/specfmt", "schemas")
    suite = tree("conformance", "benchmarks/mutation_killer.py")
    stamps = json.loads((work / "stamps.json").read_text()) if (work / "stamps.json").is_file() else {}
    if fresh or stamps.get("source") != source:
        shutil.rmtree(work, ignore_errors=True)
        stamps = {}
    head = work / "head"
    shutil.rmtree(head, ignore_errors=True)
    head.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD", "reference/specfmt", "schemas", "conformance",
                              "benchmarks/mutation_killer.py"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(head)], input=archive, check=True)
    (work / "commit").write_text(subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    if not stamps:
        shutil.copytree(head / "reference" / "specfmt", work / "src" / "specfmt",  # _schemas: copied, not linked
                        ignore=shutil.ignore_patterns("__pycache__"))
    (work / "tests").mkdir(exist_ok=True)
    shutil.copy2(head / "benchmarks" / "mutation_killer.py", work / "tests" / "test_conformance_killer.py")
    (work / "tests" / "conftest.py").write_text(CONFTEST)
    only = ", ".join(f'"src/specfmt/{m}.py"' for m in MODULES)
    (work / "pyproject.toml").write_text(MUTMUT_CONFIG.format(only=only))
    changed = bool(stamps) and stamps.get("suite") != suite
    (work / "stamps.json").write_text(json.dumps({"source": source, "suite": suite}))
    return changed


def undetected(work: Path) -> list[str]:
    """The mutants that mutmut's state holds as not detected (survived, no tests, suspicious)."""
    from mutmut.stats import status_by_exit_code

    names = []
    for module in MODULES:
        meta = json.loads((work / "mutants" / "src" / "specfmt" / f"{module}.py.meta").read_text())
        names += [name for name, code in meta["exit_code_by_key"].items()
                  if code is not None and status_by_exit_code[code] not in DETECTED]
    return names


def run_mutmut(work: Path, workers: int, names: list[str]) -> int:
    # The committed runner (head/conformance) ahead of the editable install; mutmut puts the mutated src/ first.
    env = {**os.environ, "SPECFMT_MUTATION_SUITE": str(work / "head" / "conformance"), "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(work / "head" / "conformance")}
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(workers), *names]
    return subprocess.run(command, cwd=work, env=env).returncode


def mutant_record(name: str, status: str, module: str, source_lines: list[str]) -> dict:
    """One mutant as the report lists it: where, what changed, and its stable key (no line number in it)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, cls = orig_function_and_class_names_from_key(name)
    function = f"{cls}.{function}" if cls else function
    diff = get_diff_for_mutant(name, path=f"src/specfmt/{module}.py").splitlines()
    hunk, diff = diff[2], diff[3:]
    before = [line[1:].strip() for line in diff if line.startswith("-")]
    after = [line[1:].strip() for line in diff if line.startswith("+")]
    return {"module": module, "function": function, "line": line_of(source_lines, function, hunk, diff),
            "before": " / ".join(before), "after": " / ".join(after), "status": status, "mutmut": name,
            "key": f"{module}:{function}: {' / '.join(before)} -> {' / '.join(after)}"}


def line_of(source_lines: list[str], function: str, hunk: str, diff: list[str]) -> int | None:
    """The 1-based line of the first mutated line in the module: the hunk's start is counted from the function's
    def (mutmut diffs the function alone), then the hunk's lines up to the first one removed. The text alone would
    not do: the same line can appear twice in a function (validate.read_json's two `config.missing` findings)."""
    name = function.rsplit(".", 1)[-1]
    start = next((i for i, line in enumerate(source_lines) if line.lstrip().startswith(f"def {name}(")), None)
    if start is None:
        return None
    first = int(hunk.split()[1].lstrip("-").split(",")[0])
    removed = next((i for i, line in enumerate(line for line in diff if not line.startswith("+"))
                    if line.startswith("-")), 0)
    return start + first + removed


def collect(work: Path, equivalents: dict[str, dict]) -> dict:
    """Every mutant's verdict from mutmut's state, per module, with survivors joined to their declared reasons."""
    from mutmut.stats import status_by_exit_code

    os.chdir(work)
    modules, survivors, used, durations = {}, [], set(), []
    for module in MODULES:
        meta = json.loads((work / "mutants" / "src" / "specfmt" / f"{module}.py.meta").read_text())
        source_lines = (work / "src" / "specfmt" / f"{module}.py").read_text().splitlines()
        counts = {"mutants": 0, "killed": 0, "survived": 0, "unobservable": 0, "equivalent": 0, "not_checked": 0}
        durations += [d for d in meta.get("durations_by_key", {}).values() if isinstance(d, (int, float))]
        for name, code in sorted(meta["exit_code_by_key"].items()):
            status = status_by_exit_code[code]
            counts["mutants"] += 1
            if status in DETECTED:
                counts["killed"] += 1
                continue
            if status == "not checked":
                counts["not_checked"] += 1
                continue
            record = mutant_record(name, status, module, source_lines)
            entry = equivalents.get(record["key"])
            if entry:
                used.add(record["key"])
                counts[entry["class"]] += 1
                record["excluded"] = {"class": entry["class"], "reason": entry["reason"]}
            else:
                counts["survived"] += 1
            survivors.append(record)
        judged = counts["killed"] + counts["survived"]
        counts["kill_rate"] = round(counts["killed"] / judged, 4) if judged else None
        modules[module] = counts
    stale = sorted(set(equivalents) - used)
    mean = round(sum(durations) / len(durations), 3) if durations else None
    retested = json.loads((work / "retested.json").read_text()) if (work / "retested.json").is_file() else {}
    return {"modules": modules, "survivors": survivors, "stale_equivalents": stale, "timed": len(durations),
            "killed_by_newer_cases": retested,
            "seconds_per_mutant": mean}


def markdown(report: dict) -> str:
    """The report as a page: a table per module, then every surviving mutant."""
    lines = ["<!-- generated by benchmarks/mutation.py; do not edit -->", "",
             f"mutmut {report['tool_version']}, killer: the conformance suite {report['suite_version']} alone "
             f"({report['cases']} cases, in-process through the runner); {report['seconds_per_mutant']} s per mutant "
             f"(mean over {report['timed']} timed mutants, one worker each).", "",
             "| module | levels | mutants | killed | survived | unobservable | equivalent | kill rate |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for module, c in report["modules"].items():
        rate = "-" if c["kill_rate"] is None else f"{100 * c['kill_rate']:.1f}%"
        lines.append(f"| {module}.py | {', '.join(report['levels'][module])} | {c['mutants']} | {c['killed']} | "
                     f"{c['survived']} | {c['unobservable']} | {c['equivalent']} | {rate} |")
    lines += ["", "Kill rate: killed / (killed + survived); a mutant that changes only what the protocol does not "
              "carry (unobservable, found by benchmarks/mutation_observe.py) or that no input tells apart "
              "(equivalent) is excluded, with its reason in benchmarks/mutation_equivalents.json. Every mutant "
              "that was not killed:", "",
              "| where | mutation | verdict |", "| --- | --- | --- |"]
    for s in report["survivors"]:
        excluded = s.get("excluded")
        verdict = f"{excluded['class']}: {excluded['reason']}" if excluded else s["status"]
        change = f"`{s['before']}` -> `{s['after']}`".replace("|", "\\|")
        lines.append(f"| {s['module']}.py:{s['line']} ({s['function']}) | {change} | {verdict.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def rate(c: dict | None) -> str:
    if c is None or c["kill_rate"] is None:
        return "-"
    partial = f" ({c['killed'] + c['survived']} judged)" if c.get("not_checked") else ""
    return f"{100 * c['kill_rate']:.1f}%{partial}"


def docs_page(report: dict, baseline: dict | None) -> str:
    """docs/conformance/mutation.md: how to run it, and the figures of the last report."""
    before = baseline["modules"] if baseline else {}
    lines = ["<!-- generated by benchmarks/mutation.py from bench/mutation/report.json and baseline.json; "
             "do not edit -->", "", "# Mutation testing", "",
             "A certificate is worth what the suite can fail. `make mutation` measures that: mutmut mutates the "
             "reference's validator (`validate.py`, `config_checks.py`), layout binding (`layout.py`), expression "
             "language (`expr.py`), verifier binding (`binding.py`) and verification (`verification.py`), and "
             "every mutant is graded by the conformance suite alone, no unit test taking part. A mutant the suite "
             "passes is a wrong implementation the suite would certify.", "",
             "## Running it", "",
             "```sh", "make mutation   # installs specfmt[mutation] (mutmut), then benchmarks/mutation.py", "```",
             "", "It measures the committed tree (HEAD). The suite runs in-process, through the runner's own "
             "executors and the reference adapter's serve loop (`benchmarks/mutation_killer.py`); mutmut forks a "
             "worker per mutant, runs only the cases that call the mutated function, those of the levels that reach "
             "its module (numerics for `verification.py` and `binding.py`, schema and checkpoint for the others), "
             "the cheap level first, and stops at the first failing case. A run stopped midway goes on where it "
             "stopped; a changed suite retests only the mutants that survived. It writes "
             "`bench/mutation/report.json` and `report.md` (every mutant not killed) and this page.", "",
             "A surviving mutant gets a case that kills it (`conformance/generators/mutants.py`), or a reason in "
             "`benchmarks/mutation_equivalents.json`, keyed by module, function, the line as written and the line "
             "as mutated, so a key survives edits elsewhere. `benchmarks/mutation.py --classify` finds the "
             "survivors that change only what the protocol does not carry (a finding's message, expected or found "
             "value, the report's other fields, an error's text: `benchmarks/mutation_observe.py` compares all of "
             "them with the unmutated reference) and declares them **unobservable**; a person judges the rest, as a "
             "case to add or an **equivalent**.", "",
             "## Figures", "",
             f"mutmut {report['tool_version']} at commit `{report['commit'][:7]}`, suite {report['suite_version']} "
             f"({report['cases']} cases); {report['seconds_per_mutant']} s per mutant on average, one worker each, "
             f"on a shared 2-core machine. Kill rate: killed / (killed + survived), the unobservable and equivalent "
             "mutants excluded."
             + (f" Before: commit `{baseline['commit'][:7]}`, suite {baseline['suite_version']}, before any case of "
                "mutants.py; where a module was judged only in part, the rate is of that part." if baseline else ""),
             "", "| module | levels | mutants | killed | survived | unobservable | equivalent | kill rate | before |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for module, c in report["modules"].items():
        lines.append(f"| `{module}.py` | {', '.join(report['levels'][module])} | {c['mutants']} | {c['killed']} | "
                     f"{c['survived']} | {c['unobservable']} | {c['equivalent']} | {rate(c)} | "
                     f"{rate(before.get(module))} |")
    newer = report.get("killed_by_newer_cases", {})
    if newer:
        lines += ["", f"Killed by cases added after the run's snapshot (`--retest`: the survivors graded "
                  f"in-process by HEAD's new cases): {len(newer)}, by "
                  + ", ".join(f"`{c}`" for c in sorted(set(newer.values()))) + "."]
    open_ones = [s for s in report["survivors"] if "excluded" not in s]
    lines += ["", f"## Survivors without a case or a reason ({len(open_ones)})", ""]
    lines += [f"- `{s['module']}.py:{s['line']}` ({s['function']}, {s['status']}): `{s['before']}` -> "
              f"`{s['after']}`" for s in open_ones] or ["None."]
    return "\n".join(lines) + "\n"


def write_report(work: Path, out: Path) -> dict:
    from importlib.metadata import version

    equivalents = {e["key"]: e for e in json.loads(EQUIVALENTS.read_text())["equivalents"]}
    manifest = json.loads((work / "head" / "conformance" / "manifest.json").read_text())
    report = {"tool": "mutmut", "commit": (work / "commit").read_text().strip(),
              "levels": {m: list(LEVELS_BY_MODULE.get(m, LEVELS)) for m in MODULES},
              "tool_version": version("mutmut"), "suite_version": manifest["suite_version"],
              "cases": len(manifest["cases"]), "target": TARGET, **collect(work, equivalents)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(markdown(report))
    baseline = json.loads((out / "baseline.json").read_text()) if (out / "baseline.json").is_file() else None
    DOCS.write_text(docs_page(report, baseline))
    return report


# What mutation_observe.py may find changed that the protocol does not carry (a finding's code, pointer, severity
# and file; a numerics output; a refusal's code).
UNOBSERVABLE = {"findings.message": "a finding's message", "findings.expected": "a finding's expected value",
                "findings.found": "a finding's found value", "report.algorithm": "the report's algorithm",
                "report.symbols": "the report's symbols", "report.tensors": "the report's tensor table",
                "error.text": "the text of an error"}


def classify(work: Path, report: dict) -> None:
    """Declare the survivors that change only what the protocol does not carry (mutation_observe.py), with that
    reason; print the others, which a person judges (a case to add, or an equivalent with its reason)."""
    open_ones = [s for s in report["survivors"] if "excluded" not in s]
    names = work / "observe-names.json"
    names.write_text(json.dumps([s["mutmut"] for s in open_ones]))
    env = {**os.environ, "SPECFMT_MUTATION_SUITE": str(work / "head" / "conformance"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{work / 'mutants' / 'src'}:{work / 'head' / 'conformance'}"}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mutation_observe.py"), str(names),
                    str(work / "observed.json")], cwd=work, env=env, check=True)
    observed = json.loads((work / "observed.json").read_text())
    declared = json.loads(EQUIVALENTS.read_text())
    for s in open_ones:
        fields = observed[s["mutmut"]]
        if fields and all(f in UNOBSERVABLE for f in fields):
            declared["equivalents"].append({
                "key": s["key"], "class": "unobservable", "judged_by": "benchmarks/mutation_observe.py",
                "reason": "the protocol carries a finding's code, pointer, severity and file; this changes only "
                          + ", ".join(UNOBSERVABLE[f] for f in fields)})
        else:
            print(f"to judge: {s['module']}.py:{s['line']} {s['function']}: {s['before']} -> {s['after']}  "
                  f"(changes {', '.join(fields) or 'nothing the reference returns'})")
    EQUIVALENTS.write_text(json.dumps(declared, indent=1, ensure_ascii=False) + "\n")


def retest(work: Path) -> None:
    """Grade the survivors by the cases HEAD's suite holds that the run's suite did not (mutation_retest.py, in-process,
    without mutmut): what a full run on HEAD would find of them, in seconds. Kills go into mutmut's state and
    retested.json, which names the case that killed each."""
    newer = work / "newer"
    shutil.rmtree(newer, ignore_errors=True)
    newer.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD", "conformance"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(newer)], input=archive, check=True)
    old = {c["id"] for c in json.loads((work / "head" / "conformance" / "manifest.json").read_text())["cases"]}
    new = [c["id"] for c in json.loads((newer / "conformance" / "manifest.json").read_text())["cases"]
           if c["id"] not in old]
    (work / "retest-names.json").write_text(json.dumps(undetected(work)))
    (work / "retest-cases.json").write_text(json.dumps(new))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{work / 'mutants' / 'src'}:{work / 'head' / 'conformance'}"}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mutation_retest.py"), str(newer / "conformance"),
                    str(work / "retest-names.json"), str(work / "retest-cases.json"), str(work / "retest-out.json")],
                   cwd=work, env=env, check=True)
    killed = json.loads((work / "retest-out.json").read_text())
    record = json.loads((work / "retested.json").read_text()) if (work / "retested.json").is_file() else {}
    (work / "retested.json").write_text(json.dumps({**record, **killed}, indent=1))
    for module in MODULES:
        path = work / "mutants" / "src" / "specfmt" / f"{module}.py.meta"
        meta = json.loads(path.read_text())
        for name in killed:
            if name in meta["exit_code_by_key"]:
                meta["exit_code_by_key"][name] = 1
        path.write_text(json.dumps(meta))
    print(f"retest: {len(killed)} of the survivors killed by {len(new)} newer cases")


def running(work: Path) -> int | None:
    """The pid of a live run of this script on `work`, if any (a second one would rebuild the directory under it)."""
    try:
        pid = int((work.parent / "mutation.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="mutants tested side by side (default 2)")
    p.add_argument("--fresh", action="store_true", help="discard mutmut's state and test every mutant again")
    p.add_argument("--report-only", action="store_true", help="write the report from the state as it is")
    p.add_argument("--retest", action="store_true",
                   help="grade the survivors by HEAD's cases that the run's suite did not have, then report")
    p.add_argument("--classify", action="store_true",
                   help="declare the survivors that change only what the protocol does not carry, then report")
    p.add_argument("names", nargs="*", help="only these mutants (mutmut names or globs)")
    args = p.parse_args()
    if args.retest:
        retest(WORK)
    if not (args.report_only or args.classify or args.retest):
        if running(WORK):
            print(f"another make mutation holds {WORK} (pid {running(WORK)}); wait for it", file=sys.stderr)
            return 2
        (WORK.parent / "mutation.pid").write_text(str(os.getpid()))
        suite_changed = prepare(WORK, args.fresh)
        start = time.monotonic()
        code = run_mutmut(WORK, args.workers, args.names)
        if suite_changed and not args.names and code == 0:
            code = run_mutmut(WORK, args.workers, undetected(WORK))
        print(f"mutmut exited {code} after {time.monotonic() - start:.0f} s")
    report = write_report(WORK, OUT)
    if args.classify:
        classify(WORK, report)
        report = write_report(WORK, OUT)
    for module, c in report["modules"].items():
        print(f"{module:14} {c['mutants']:5} mutants  {c['killed']:5} killed  {c['survived']:4} survived  "
              f"{c['unobservable']:4} unobservable  {c['equivalent']:3} equivalent  kill rate {c['kill_rate']}")
    for key in report["stale_equivalents"]:
        print(f"declared equivalent but no longer a survivor: {key}")
    low = [m for m, c in report["modules"].items() if c["kill_rate"] is None or c["kill_rate"] < TARGET]
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
