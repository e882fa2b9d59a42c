"""dflash draft (in progress). Spec: spec/algorithms/dflash.md"""


def build(config, w, verifier):
    raise NotImplementedError("the dflash runtime module is not written yet")
