"""mlp_speculator draft (in progress). Spec: spec/algorithms/mlp_speculator.md"""


def build(config, w, verifier):
    raise NotImplementedError("the mlp_speculator runtime module is not written yet")
