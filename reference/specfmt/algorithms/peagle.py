"""peagle draft (in progress). Spec: spec/algorithms/peagle.md"""


def build(config, w, verifier):
    raise NotImplementedError("the peagle runtime module is not written yet")
