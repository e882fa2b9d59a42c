"""Parity with the speculators library (pip speculators==0.9.0, `make interop` only): the same
checkpoint gives the same draft logits, in float32, within 1e-5, in speculators and in specfmt, for
eagle3, peagle, dflash and mtp.

speculators only exposes its training forward passes, so each test fixes what training randomizes:
EAGLE-3 runs its first training-time step (ttt_steps=1) over rows that pair each aux state with the
next token's embedding; P-EAGLE gets one fixed chain of depths instead of sampled ones; DFlash gets a
loss mask that admits one anchor; MTP compares its first teacher-forced step. Gotchas: torch is pinned
through the constraints file, speculators is installed without torchvision/torchaudio, attention is
eager (flex attention needs torch.compile), and P-EAGLE needs the eager loss (fused losses need Triton).
"""

import json
import os

import pytest
import torch

from builders import write_variant, write_verifier
from specfmt.algorithms import eagle3
from specfmt.defaults import resolve
from specfmt.verifier import Verifier
from specfmt.weights import bind_roles

speculators_eagle3 = pytest.importorskip("speculators.models.eagle3")
pytestmark = pytest.mark.interop
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EAGLE3_VARIANTS = ["eagle3", "eagle3_llama_2l_residual_before_norm", "eagle3_qwen3_2l_fullvocab_normfc",
                   "eagle3_fcnorm_4aux"]
ROWS = 12
STD = 0.3  # weights large enough that logits are O(1): a 1e-5 bound then has teeth


def checkpoint_pair(variant: str, tmp_path):
    """A draft of `variant` (O(1) logits) and a verifier, with the draft naming the verifier's local path,
    which speculators loads: (draft path, draft config, verifier path)."""
    verifier_dir = write_verifier(tmp_path / "verifier")
    path = write_variant(variant, tmp_path / "draft", std=STD)
    config = json.loads((path / "config.json").read_text())
    config["speculators_config"]["verifier"]["name_or_path"] = str(verifier_dir)
    (path / "config.json").write_text(json.dumps(config))
    return path, config, verifier_dir


def speculators_model(path):
    config = speculators_eagle3.Eagle3SpeculatorConfig.from_pretrained(str(path))
    config.transformer_layer_config._attn_implementation = "eager"  # the CPU path; flex attention needs compile
    return speculators_eagle3.Eagle3DraftModel.from_pretrained(str(path), config=config).eval()


@pytest.mark.parametrize("variant", EAGLE3_VARIANTS)
def test_eagle3_draft_logits_match_speculators_within_1e_5(variant, tmp_path):
    path, config, verifier_dir = checkpoint_pair(variant, tmp_path)
    theirs = speculators_model(path)
    captured = {}
    theirs.lm_head.register_forward_hook(lambda module, args, out: captured.setdefault("logits", out))

    resolved = resolve(config)
    state = {k: v.float() for k, v in theirs.state_dict().items() if not k.startswith("verifier_")}
    ours = eagle3.build(resolved, bind_roles("eagle3", resolved, state), Verifier.from_pretrained(verifier_dir))

    g = torch.Generator().manual_seed(0)
    aux = torch.randn(ROWS, len(ours.aux_ids) * 32, generator=g)
    ids = torch.randint(0, 128, (ROWS,), generator=g)
    with torch.no_grad():
        theirs(aux[None], ids[None], torch.zeros(1, ROWS, dtype=torch.long), ttt_steps=1)
        logits, _ = ours.forward_rows(ids, ours.combine(aux), torch.arange(1, ROWS + 1))
    assert captured["logits"].abs().max() > 0.5
    assert (logits - captured["logits"][0]).abs().max() < 1e-5


MTP_VARIANTS = ["mtp", "mtp_qwen3_bias"]


@pytest.mark.parametrize("variant", MTP_VARIANTS)
def test_mtp_first_step_logits_match_speculators_within_1e_5(variant, tmp_path):
    from speculators.models.mtp import MTPDraftModel

    from specfmt.algorithms import mtp

    path, config, verifier_dir = checkpoint_pair(variant, tmp_path)
    theirs = MTPDraftModel.from_pretrained(str(path)).eval()

    verifier = Verifier.from_pretrained(verifier_dir)
    resolved = resolve(config)
    state = {k: v.float() for k, v in theirs.state_dict().items() if k.startswith("mtp_layers.")}
    ours = mtp.build(resolved, bind_roles("mtp", resolved, state), verifier)

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 128, (1, ROWS), generator=g)
    hidden = torch.randn(1, ROWS, 32, generator=g)
    with torch.no_grad():
        their_logits = theirs(ids, hidden)[0][0][0]  # first step: rows t pair hidden[t] with ids[t+1]
        rows = their_logits.shape[0]
        logits, _ = ours.forward_rows(ids[0, 1:rows + 1], hidden[0, :rows], torch.arange(rows))
    assert their_logits.abs().max() > 0.5
    assert (logits - their_logits).abs().max() < 1e-5


DFLASH_VARIANTS = ["dflash", "dflash_bias"]


@pytest.mark.parametrize("variant", DFLASH_VARIANTS)
def test_dflash_block_logits_match_speculators_within_1e_5(variant, tmp_path):
    from speculators.models.dflash import DFlashDraftModel

    from specfmt.algorithms import dflash
    from specfmt.proposal import Context

    path, config, verifier_dir = checkpoint_pair(variant, tmp_path)
    theirs = DFlashDraftModel.from_pretrained(str(path)).eval()
    resolved = resolve(config)
    state = {k: v.float() for k, v in theirs.state_dict().items() if not k.startswith("verifier_")}
    ours = dflash.build(resolved, bind_roles("dflash", resolved, state), Verifier.from_pretrained(verifier_dir))

    block = resolved["block_size"]
    anchor = ROWS - block - 1  # the loss mask allows only it (speculators never anchors in the last B)
    g = torch.Generator().manual_seed(0)
    aux = torch.randn(1, ROWS, len(ours.aux_ids) * 32, generator=g)
    ids = torch.randint(0, 128, (1, ROWS), generator=g)
    loss_mask = torch.zeros(1, ROWS, dtype=torch.long)
    loss_mask[0, anchor] = 1
    with torch.no_grad():
        _, their_logits, *_ = theirs._backbone_forward(aux, ids, loss_mask, torch.zeros(1, ROWS, 32),
                                                      torch.zeros(1, ROWS, dtype=torch.long), max_anchors=1)
        ctx = Context(ids[0, :anchor + 1].tolist(), aux[0, :anchor], aux[0, :anchor, :0], aux[0, :anchor, :0])
        logits = torch.nn.functional.linear(ours.block_states(ctx), ours.w["lm_head"])  # [B, H] -> [B, V_d]
    assert their_logits.abs().max() > 0.5
    assert (logits - their_logits[0]).abs().max() < 1e-5


PEAGLE_VARIANTS = ["peagle", "peagle_qwen3_2l_bias_normfc"]


@pytest.mark.parametrize("variant", PEAGLE_VARIANTS)
def test_peagle_parallel_pass_logits_match_speculators_within_1e_5(variant, tmp_path, monkeypatch):
    from speculators.losses import resolve_loss_config
    from speculators.models import peagle as speculators_peagle
    from speculators.models.peagle import core as speculators_peagle_core

    from specfmt.algorithms import peagle

    path, config, verifier_dir = checkpoint_pair(variant, tmp_path)
    spec_config = speculators_peagle.PEagleSpeculatorConfig.from_pretrained(str(path))
    spec_config.transformer_layer_config._attn_implementation = "eager"
    theirs = speculators_peagle.PEagleDraftModel.from_pretrained(str(path), config=spec_config).eval()
    resolved = resolve(config)
    state = {k: v.float() for k, v in theirs.state_dict().items() if not k.startswith("verifier_")}
    ours = peagle.build(resolved, bind_roles("peagle", resolved, state), Verifier.from_pretrained(verifier_dir))

    k = 4
    context = ROWS - k  # rows 0..context-1 are verified; the chain hangs off the last of them
    anchors = torch.cat([torch.arange(context), torch.full((k - 1,), context - 1)])
    depths = torch.cat([torch.zeros(context, dtype=torch.long), torch.arange(1, k)])
    # speculators samples (anchor, depth) pairs at random for training; fix them to one inference pass
    monkeypatch.setattr(speculators_peagle_core, "generate_cod_sample_indices", lambda **_: (anchors, depths))
    captured = {}
    theirs.lm_head.register_forward_hook(lambda module, args, out: captured.setdefault("logits", out))

    g = torch.Generator().manual_seed(0)
    aux = torch.randn(ROWS, len(ours.aux_ids) * 32, generator=g)
    row_tokens = torch.randint(0, 128, (ROWS,), generator=g)  # row t carries x[t+1], as speculators' data
    with torch.no_grad():
        theirs(aux[None], row_tokens[None], torch.zeros(1, ROWS, dtype=torch.long),
               verifier_last_hidden_states=torch.zeros(1, ROWS, 32),
               loss_config=resolve_loss_config("kl_div", implementation="eager"))  # fused losses need Triton
        logits = ours.forward_pass(row_tokens[:context], aux[:context], 0, k)
    their_logits = captured["logits"][0][context - 1:]  # the last context row, then the depth rows
    assert their_logits.abs().max() > 0.5
    assert (logits - their_logits).abs().max() < 1e-5
