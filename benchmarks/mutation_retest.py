"""Retest surviving mutants against cases newer than the run's suite (`benchmarks/mutation.py --retest`).

Run in mutmut's work directory on the mutated copy of the reference (mutants/src). Each mutant is graded as the
killer grades it, in-process through the runner's executors (mutation_killer.py), but only by the given cases of a
newer suite; a case that the unmutated reference of the run does not pass (it needs newer reference code) is left
out. Usage: python mutation_retest.py SUITE_ROOT NAMES.json CASE_IDS.json OUT.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["MUTANT_UNDER_TEST"] = ""
os.environ["SPECFMT_MUTATION_SUITE"] = sys.argv[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mutation_killer as killer  # noqa: E402 - reads SPECFMT_MUTATION_SUITE at import
from mutation import LEVELS, LEVELS_BY_MODULE  # noqa: E402

from specfmt import expr  # noqa: E402


def passes(case) -> bool:
    expr._CACHE.clear()
    return killer.execute(killer.session(), case, keep_loaded=False).status == "pass"


def main() -> int:
    names, ids = json.loads(Path(sys.argv[2]).read_text()), set(json.loads(Path(sys.argv[3]).read_text()))
    cases = [c for c in killer.SUITE.cases if c.id in ids and passes(c)]
    killed = {}
    for name in names:
        levels = LEVELS_BY_MODULE.get(name.split(".")[1], LEVELS)
        os.environ["MUTANT_UNDER_TEST"] = name
        try:
            killed[name] = next((c.id for c in cases if c.level in levels and not passes(c)), None)
        finally:
            os.environ["MUTANT_UNDER_TEST"] = ""
    Path(sys.argv[4]).write_text(json.dumps({n: c for n, c in killed.items() if c}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
