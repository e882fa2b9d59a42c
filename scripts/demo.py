"""make demo: validate and inspect the example checkpoints that ship in examples/, then decode with one.

One clean strict EAGLE-3 draft, the same draft as a careless converter would write it, and a tiny
verifier to run the clean draft against. Exits 0 when every step behaves as expected.
"""

from __future__ import annotations

import sys
from pathlib import Path

from specfmt.cli import main as specfmt

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def step(title: str, *argv: str) -> int:
    print(f"\n$ specfmt {' '.join(argv)}    # {title}", flush=True)
    return specfmt(list(argv))


def main() -> int:
    clean, broken = str(EXAMPLES / "eagle3-clean"), str(EXAMPLES / "eagle3-broken")
    results = [
        step("a strict checkpoint: no findings", "validate", clean, "--profile", "strict") == 0,
        step("what the layout implies for it, tensor by tensor", "inspect", clean) == 0,
        step("a broken one: every finding, compat profile, data scanned", "validate", broken, "--scan-values") == 1,
        step("under strict every hazard is an error", "validate", broken, "--profile", "strict") == 1,
        step("speculative decoding with the reference runtime (random weights: lossless, little accepted)",
             "generate", "--verifier", str(EXAMPLES / "tiny-verifier"), "--draft", clean, "--prompt",
             "w1 w5 w9 w3", "--max-new-tokens", "24", "--k", "3") == 0,
    ]
    print(f"\ndemo: {sum(results)}/{len(results)} steps behaved as expected")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
