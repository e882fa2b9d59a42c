"""dspark draft (in progress). Spec: spec/algorithms/dspark.md"""


def build(config, w, verifier):
    raise NotImplementedError("the dspark runtime module is not written yet")
