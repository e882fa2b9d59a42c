"""independent draft (in progress). Spec: spec/algorithms/independent.md"""


def build(config, w, verifier):
    raise NotImplementedError("the independent runtime module is not written yet")
