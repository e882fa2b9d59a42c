"""The runtime's proposal defaults are the schema's, and a lossy setting it does not implement is refused."""

import copy

import pytest

from builders import config_of
from specfmt.defaults import resolve
from specfmt.proposal import Proposal
from specfmt.runtime import default_proposal
from specfmt.schemas import load

GREEDY = load("config.schema.json")["$defs"]["proposal_greedy"]["properties"]


def test_a_proposal_defaults_to_the_schemas_greedy_method():
    proposal = Proposal()
    assert (proposal.speculative_tokens, proposal.verifier_accept_k, proposal.accept_tolerance) == (
        GREEDY["speculative_tokens"]["default"], GREEDY["verifier_accept_k"]["default"],
        GREEDY["accept_tolerance"]["default"])


def sampling_config(lenience: float) -> dict:
    config = copy.deepcopy(config_of("eagle3"))
    config["speculators_config"]["proposal_methods"] = [
        {"proposal_type": "sampling", "speculative_tokens": 3, "accept_lenience": lenience}]
    config["speculators_config"]["default_proposal_method"] = "sampling"
    return resolve(config)


def test_lossless_sampling_is_the_checkpoints_default_proposal():
    assert default_proposal(sampling_config(1.0)).kind == "sampling"


def test_a_lossy_accept_lenience_is_refused_not_dropped():
    with pytest.raises(ValueError, match="accept_lenience 0.5 is lossy"):
        default_proposal(sampling_config(0.5))
