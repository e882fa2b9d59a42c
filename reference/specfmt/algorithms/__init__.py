"""One module per algorithm, named like its speculators_model_type. The registry is a dict literal.

Each module is a DraftModule: `problems(config, w, verifier) -> list[str]`, what a runtime must reject that
validation does not check (empty when the draft can run), and `build(config, w, verifier) -> Draft`, called only
when there are none. `config` has defaults resolved, `w` holds the checkpoint's tensors by role
(specfmt.weights.bind_roles) and `verifier` is the bound specfmt.verifier.Verifier.
"""

from __future__ import annotations

from typing import Protocol

from specfmt.algorithms import dflash, dspark, eagle, eagle3, independent, medusa, mlp_speculator, mtp, ngram, peagle
from specfmt.proposal import Draft
from specfmt.verifier import Verifier


class DraftModule(Protocol):
    def problems(self, config: dict, w: dict, verifier: Verifier) -> list[str]: ...

    def build(self, config: dict, w: dict, verifier: Verifier) -> Draft: ...


ALGORITHMS: dict[str, DraftModule] = {
    "eagle3": eagle3,
    "eagle": eagle,
    "independent": independent,
    "mtp": mtp,
    "peagle": peagle,
    "dflash": dflash,
    "dspark": dspark,
    "medusa": medusa,
    "mlp_speculator": mlp_speculator,
    "ngram": ngram,
}
