"""medusa draft (in progress). Spec: spec/algorithms/medusa.md"""


def build(config, w, verifier):
    raise NotImplementedError("the medusa runtime module is not written yet")
