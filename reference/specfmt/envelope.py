"""The envelope every checkpoint specfmt writes carries: speculators_config with one greedy proposal method and the
verifier facts CFG-8 asks for, in the format version of the schemas. Used by the trainer's recipes and the
converters. Spec: spec/config.md#CFG-3 .. CFG-8
"""

from __future__ import annotations

from specfmt.schemas import VERSION


def envelope(algorithm: str, verifier_config: dict, verifier_name: str, k: int, dtype: str = "float32",
             **fields) -> dict:
    """A strict config of `algorithm` for the verifier whose Hugging Face config is `verifier_config`, with
    `k` speculative tokens and the algorithm's own `fields`."""
    c = verifier_config
    return {"speculators_model_type": algorithm, "speculators_format_version": VERSION, "dtype": dtype,
            "speculators_config": {
                "algorithm": algorithm, "default_proposal_method": "greedy",
                "proposal_methods": [{"proposal_type": "greedy", "speculative_tokens": k, "verifier_accept_k": 1,
                                      "accept_tolerance": 0.0}],
                "verifier": {"name_or_path": verifier_name, "architectures": c.get("architectures", []),
                             "hidden_size": c["hidden_size"], "num_hidden_layers": c["num_hidden_layers"],
                             "vocab_size": c["vocab_size"]}},
            **fields}
