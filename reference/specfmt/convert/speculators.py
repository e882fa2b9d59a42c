"""specfmt convert --from speculators: a checkpoint the speculators library wrote, v0.1 on, as a strict one.

What compat reads goes through the finishing step upgrade uses too (common.finish: defaults explicit, engine-default
conflicts refused unless --set, verifier facts from --verifier and refused where they contradict it, auto_map dropped,
torch_dtype read as dtype), with the tensors read and written again
and the stray verifier tensors (the MTP converter's NaN verifier_lm_head) left out. Two historical forms compat does
not read: the flattened `independent` config of v0.1 to v0.4 (the draft LM's own Hugging Face config at the top
level, with its model_type, beside speculators_config; the weights are the LM's), which becomes a v1 independent
checkpoint, and the config-only `mlp` type of the same releases, which has no weights format and is refused.
Spec: spec/config.md#CFG-11, spec/algorithms/independent.md#ALG-INDEPENDENT-3
"""

from __future__ import annotations

import copy
import json

from specfmt.convert.common import (
    Conversion,
    Decision,
    Refusal,
    Refused,
    Source,
    SourceError,
    VerifierFacts,
    finish,
    float_dtype,
)
from specfmt.convert.upgrade import STRAY

CONFIG = "config.json"
REMOVED = ("sampling", "static_tree", "dynamic_tree")  # proposal types speculators 0.3.0 removed (#213)
ENVELOPE = ("speculators_model_type", "speculators_config", "speculators_version", "speculators_format_version",
            "auto_map")  # the keys speculators added around the flattened LM config


def unflattened(cfg: dict, tensors: dict, decisions: list[Decision]) -> dict:
    """The v1 independent config of a v0.1-v0.4 flattened one: every key but speculators' own goes under
    transformer_layer_config, as the LM's config.json held it. Spec: spec/algorithms/independent.md"""
    layer = {k: v for k, v in cfg.items() if k not in ENVELOPE}
    decisions.append(Decision("translated", "transformer_layer_config", f"the {len(layer)} keys of the draft LM's "
                              "config, flattened at the top level by speculators v0.1-v0.4, moved under "
                              "transformer_layer_config"))
    out = {k: cfg[k] for k in ENVELOPE if k in cfg}
    out["transformer_layer_config"] = layer
    out["dtype"] = float_dtype(tensors, "the draft LM's tensors")
    decisions.append(Decision("computed", "dtype", f"{json.dumps(out['dtype'])}, the dtype of the LM's tensors"))
    return out


def stray_tensors(source: Source) -> set[str]:
    """Tensors a layout names as the verifier's, which the draft never reads (upgrade drops the same)."""
    from specfmt.validate import validate

    return {f.pointer[1:] for f in validate(source.path, "compat").findings if f.code in STRAY}


def without_removed(cfg: dict, given: dict, where: str, refusals: list[Refusal], decisions: list[Decision]) -> dict:
    """Proposal methods of the types speculators 0.3 removed (v0.1-v0.2 wrote them): dropped when the default
    method is another one, since nothing reads them; refused when the default is one of them."""
    sc = cfg.get("speculators_config") if isinstance(cfg.get("speculators_config"), dict) else {}
    methods = sc.get("proposal_methods") if isinstance(sc.get("proposal_methods"), list) else []
    removed = [m for m in methods if isinstance(m, dict) and m.get("proposal_type") in REMOVED]
    if not removed or "speculators_config.proposal_methods" in given:
        return cfg
    if sc.get("default_proposal_method") in REMOVED:
        k = next((m["speculative_tokens"] for m in removed if "speculative_tokens" in m), "K")
        default = json.dumps(sc["default_proposal_method"])
        greedy = json.dumps([{"proposal_type": "greedy", "speculative_tokens": k}])
        refusals.append(Refusal(where, "/speculators_config/proposal_methods", f"the default proposal method "
                                f"{default} is a type speculators 0.3.0 removed, which strict rejects "
                                "(hazard.proposal_type_removed)", f"--set speculators_config.proposal_methods={greedy} "
                                "--set speculators_config.default_proposal_method=greedy"))
        return cfg
    out = copy.deepcopy(cfg)
    out["speculators_config"]["proposal_methods"] = [m for m in methods if m not in removed]
    types = [m["proposal_type"] for m in removed]
    decisions.append(Decision("dropped", "speculators_config.proposal_methods", f"{json.dumps(types)}: types "
                              "speculators 0.3.0 removed; the default method is another"))
    return out


def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict config and tensors of a speculators checkpoint. Spec: spec/versioning.md"""
    cfg, where = source.config, f"{source.path}/{CONFIG}"
    if cfg is None or "speculators_model_type" not in cfg:
        raise SourceError(f"{where}: a speculators checkpoint's config.json states speculators_model_type; none found")
    decisions: list[Decision] = []
    refusals: list[Refusal] = []
    if cfg["speculators_model_type"] == "mlp":
        raise Refused([Refusal(where, "/speculators_model_type", "the mlp type of speculators v0.1 to v0.4 is a "
                               "config class only: no model class, no weights format, nothing to convert (IBM's "
                               "MLPSpeculator converts with --from mlp-speculator)", "nothing (no flag converts this "
                               "one)", "convert.unsupported")])
    tensors = dict(source.tensors)
    if cfg["speculators_model_type"] == "independent" and "transformer_layer_config" not in cfg:
        cfg = unflattened(cfg, tensors, decisions)
    else:
        stray = stray_tensors(source)
        decisions += [Decision("dropped", name, "a verifier tensor the draft does not read (the runtime uses the "
                               "verifier's own); speculators' MTP converter saves an uninitialised copy")
                      for name in sorted(stray)]
        tensors = {k: t for k, t in tensors.items() if k not in stray}
    cfg = without_removed(cfg, given, where, refusals, decisions)
    return finish(cfg, tensors, decisions, given, str(source.path), verifier, refusals)
