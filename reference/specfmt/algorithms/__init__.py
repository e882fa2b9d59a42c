"""One module per algorithm, named like its speculators_model_type. The registry is a dict literal.

Each module exposes `build(config, w, verifier) -> Draft`: `config` with defaults resolved, `w` the
checkpoint's tensors by role (specfmt.weights.bind_roles), `verifier` the bound specfmt.verifier.Verifier.
"""

from specfmt.algorithms import dflash, dspark, eagle, eagle3, independent, medusa, mlp_speculator, mtp, ngram, peagle

BUILDERS = {
    "eagle3": eagle3.build,
    "eagle": eagle.build,
    "independent": independent.build,
    "mtp": mtp.build,
    "peagle": peagle.build,
    "dflash": dflash.build,
    "dspark": dspark.build,
    "medusa": medusa.build,
    "mlp_speculator": mlp_speculator.build,
    "ngram": ngram.build,
}
