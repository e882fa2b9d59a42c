"""mtp draft (in progress). Spec: spec/algorithms/mtp.md"""


def build(config, w, verifier):
    raise NotImplementedError("the mtp runtime module is not written yet")
