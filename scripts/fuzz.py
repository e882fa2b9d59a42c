"""make fuzz: at least 10^5 inputs through each fuzz target of scripts/fuzz_targets.py, then per target the inputs run,
the uncaught exceptions (the goal is 0), the slowest input and the peak RSS. Exit 1 if any exception escaped.

hypothesis-jsonschema takes 0.5 to 3 s a config here, so it cannot draw 10^5 of them. What this script chose: it
draws a pool once (--schema-examples per algorithm and profile, through @given with max_examples); then a
random.Random seeded with --seed picks a seed input (real configs, headers and indexes; that pool too for the config
target) and applies the mutators of fuzz_targets, the same that tests/test_fuzz.py runs with hypothesis choosing
their seed. The first few failing inputs, their tracebacks and each target's slowest input are written under --out.
The address space is capped (--max-memory-gib), so an input that makes the validator allocate without bound is a
MemoryError counted here, not a run the kernel kills.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_targets  # noqa: E402
from fuzz_targets import Outcome, Target  # noqa: E402
from specfmt.findings import PROFILES  # noqa: E402
from specfmt.schemas import ALGORITHMS  # noqa: E402


def draw_pool(per_algorithm: int, seed: int) -> list:
    """Configs drawn by hypothesis-jsonschema: `per_algorithm` for each algorithm under each profile's schema."""
    pool: list = []
    for profile in PROFILES:
        for algorithm in sorted(ALGORITHMS):
            strategy = fuzz_targets.algorithm_configs(profile, algorithm)

            @settings(max_examples=per_algorithm, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @hypothesis_seed(seed)
            @given(strategy)
            def collect(config):
                pool.append(config)

            collect()
    return pool


def record(target: Target, outcome: Outcome, out: Path) -> None:
    """The first failing inputs with their tracebacks, and the slowest input, as files under `out`."""
    for stale in out.glob(f"{target.name}-crash-*"):
        stale.unlink()
    for i, (value, trace) in enumerate(outcome.first):
        (out / f"{target.name}-crash-{i}.input").write_bytes(target.dump(value))
        (out / f"{target.name}-crash-{i}.txt").write_text(trace)
    (out / f"{target.name}-slowest.input").write_bytes(target.dump(outcome.slowest[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs per target (default: 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutators and of hypothesis (default: 0)")
    parser.add_argument("--schema-examples", type=int, default=5,
                        help="configs drawn from the schema per algorithm and profile (default: 5)")
    parser.add_argument("--targets", nargs="+", default=None, help="run only these targets (default: all)")
    parser.add_argument("--out", type=Path, default=Path("test-output/fuzz"), help="where inputs are saved")
    parser.add_argument("--max-memory-gib", type=float, default=4.0,
                        help="address-space limit of this process (default: 4.0)")
    args = parser.parse_args(argv)
    limit = int(args.max_memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    args.out.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    pool = draw_pool(args.schema_examples, args.seed) if args.schema_examples else []
    print(f"pool: {len(pool)} configs drawn from the schemas in {time.perf_counter() - begin:.0f} s", flush=True)
    failed = 0
    with tempfile.TemporaryDirectory() as work:
        chosen = fuzz_targets.targets(Path(work), pool)
        for name in args.targets or list(chosen):
            target, start = chosen[name], time.perf_counter()
            outcome = fuzz_targets.fuzz(target, args.count, random.Random(f"{args.seed}:{name}"))
            record(target, outcome, args.out)
            failed += outcome.crashes
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
            print(f"{name}: {outcome.inputs} inputs in {time.perf_counter() - start:.0f} s, "
                  f"{outcome.crashes} uncaught exceptions, slowest input {outcome.slowest[0] * 1000:.1f} ms "
                  f"({args.out / (name + '-slowest.input')}), peak RSS so far {peak_mib:.0f} MiB", flush=True)
            for kind, n in sorted(outcome.kinds.items()):
                print(f"  {n} x {kind}")
    print(f"total: {failed} uncaught exceptions in {time.perf_counter() - begin:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
