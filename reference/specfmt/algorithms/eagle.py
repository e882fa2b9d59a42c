"""eagle draft (in progress). Spec: spec/algorithms/eagle.md"""


def build(config, w, verifier):
    raise NotImplementedError("the eagle runtime module is not written yet")
