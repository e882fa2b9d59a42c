"""ngram draft (in progress). Spec: spec/algorithms/ngram.md"""


def build(config, w, verifier):
    raise NotImplementedError("the ngram runtime module is not written yet")
