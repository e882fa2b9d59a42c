"""Schema-level cases for the config rules of an algorithm page that the generic groups test on another algorithm's
variant only (schema_level.py takes the first variant that has a field): one group per rule, on the variant of the
rule's own algorithm, so that an implementation that checks the rule for one algorithm and not the other fails.
The format-version group checks CFG-4 and VER-3's acceptance of a later minor version.
"""

from __future__ import annotations

from conformance.generators.common import PROFILES
from conformance.generators.schema_level import VARIANTS, group, removed, replaced, schema_test

MODEL_TYPE = ("transformer_layer_config", "model_type")
PAGE = "spec/algorithms/{}.md#{}"


def _flattened(config: dict) -> dict:
    """The speculators v0.1.0 to v0.4.0 form: the draft config's keys at the top level."""
    doc = removed(config, ("transformer_layer_config",))
    return {**config["transformer_layer_config"], **doc}


def _renamed(config: dict, name: str) -> dict:
    doc = replaced(config, ("speculators_model_type",), name)
    return replaced(doc, ("speculators_config", "algorithm"), name)


# (rule, variant, test id, description, document, profiles, targeted (code, pointer) or None for a valid document)
RULES = [
    *[(rule, variant, "model-type-absent", f"transformer_layer_config.model_type removed from the {variant} variant",
       removed(VARIANTS[variant], MODEL_TYPE), PROFILES,
       {"compat": ("hazard.layer_model_type_implicit", "/transformer_layer_config/model_type"),
        "strict": ("config.required", "/transformer_layer_config/model_type")})
      for rule, variant in (("ALG-EAGLE-1", "eagle"), ("ALG-INDEPENDENT-1", "independent"), ("ALG-MTP-1", "mtp"),
                            ("ALG-DFLASH-4", "dflash"))],
    *[(rule, variant, "model-type-unknown", f"transformer_layer_config.model_type {value!r} in the {variant} variant",
       replaced(VARIANTS[variant], MODEL_TYPE, value), ("compat",),
       {"compat": ("config.enum", "/transformer_layer_config/model_type")})
      for rule, variant, value in (("ALG-EAGLE-1", "eagle", "mistral"), ("ALG-INDEPENDENT-1", "independent", "gemma"),
                                   ("ALG-MTP-1", "mtp", "qwen3_next"), ("ALG-DFLASH-4", "dflash", "mistral"))],
    ("ALG-EAGLE-3", "eagle", "verifier-vocab-size", "the eagle variant bound to a verifier of another vocabulary size",
     replaced(VARIANTS["eagle"], ("speculators_config", "verifier", "vocab_size"), 256), ("compat",),
     {"compat": ("config.verifier_mismatch", "/transformer_layer_config/vocab_size")}),
    ("ALG-INDEPENDENT-2", "independent", "verifier-vocab-size", "the independent variant bound to a verifier of "
     "another vocabulary size", replaced(VARIANTS["independent"], ("speculators_config", "verifier", "vocab_size"),
                                         256), ("compat",),
     {"compat": ("config.verifier_mismatch", "/transformer_layer_config/vocab_size")}),
    ("ALG-INDEPENDENT-2", "independent", "draft-hidden-size", "the independent draft's own hidden size differs from "
     "the verifier's (valid: it is not compared)",
     replaced(VARIANTS["independent"], ("transformer_layer_config", "hidden_size"), 48), PROFILES, {}),
    ("ALG-INDEPENDENT-3", "independent", "flattened", "the independent variant in the speculators v0.1.0 to v0.4.0 "
     "form, the draft config flattened to the top level", _flattened(VARIANTS["independent"]), ("compat",),
     {"compat": ("config.required", "/transformer_layer_config")}),
    ("ALG-MLP-2", "mlp_speculator", "mlp-alias", "the mlp_speculator variant named \"mlp\", an alias the format "
     "does not define", _renamed(VARIANTS["mlp_speculator"], "mlp"), ("compat",),
     {"compat": ("config.enum", "/speculators_model_type")}),
]


def algorithm_rules() -> list[dict]:
    """One group per (rule, profile): the rule's tests on its own algorithm's variant."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for rule, variant, test_id, description, doc, profiles, targets in RULES:
        algorithm = VARIANTS[variant]["speculators_model_type"]
        for profile in profiles:
            tests = groups.setdefault((rule, algorithm, profile), [])
            tests.append(schema_test(test_id, description, doc, profile, targets.get(profile)))
    return [group(f"cfg.{rule.lower()}.{profile}", f"{rule}'s config checks on the {algorithm} variant ({profile})",
                  profile, tests, PAGE.format(algorithm, rule))
            for (rule, algorithm, profile), tests in groups.items()]


def format_version() -> list[dict]:
    """A later 1.x minor version is accepted under compat, its new fields ignored; strict requires "1.0"."""
    later = {**VARIANTS["eagle3"], "speculators_format_version": "1.7", "field_added_in_1_7": {"any": [1, "x"]}}
    tests = {"compat": [schema_test("later-minor", "eagle3 declaring format version 1.7 with a field 1.7 adds is "
                                    "valid", later, "compat")],
             "strict": [schema_test("later-minor", "eagle3 declaring format version 1.7 under strict", later, "strict",
                                    ("config.enum", "/speculators_format_version"))]}
    return [group(f"cfg.format-version.{profile}", f"a later minor format version ({profile})", profile,
                  tests[profile], "spec/config.md#CFG-4", "spec/versioning.md#VER-3") for profile in PROFILES]
