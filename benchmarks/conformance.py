"""Benchmark: the whole conformance suite against the reference adapter, timed per level.

Goal: under 60 s in all on a 2-core machine. One runner process per level, side by side in one run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = f"{sys.executable} {ROOT / 'conformance' / 'adapters' / 'reference' / 'adapter.py'}"


def main() -> int:
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for level in ("schema", "checkpoint", "numerics"):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "specfmt_conformance.cli", "run", "--adapter", ADAPTER,
                                   "--level", level, "--report", str(Path(tmp) / level)],
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - start
            total += seconds
            summary = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else proc.stderr.strip()[-200:]
            print(f"{level:10} {seconds:6.2f} s  {summary}")
    print(f"{'total':10} {total:6.2f} s  (goal < 60 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
