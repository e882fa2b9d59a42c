"""specfmt convert --from eagle3-research: SafeAILab research, SpecForge and speculators research EAGLE-3 drafts become
strict eagle3 checkpoints whose proposals equal the research math, computed here from the source tensors
(tests/eagle3_sources.py) on aux states from Hugging Face transformers; other inputs are one line."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from builders import write_variant
from eagle3_sources import (
    N_VERIFIER,
    SAFEAILAB,
    SPECFORGE,
    SPECFORGE_WIDE,
    SPECULATORS_RESEARCH,
    VERIFIER,
    ResearchDraft,
    hf_hidden_states,
    source_aux,
    source_tensors,
    speculators_research_tensors,
    verifier_dir,
    write_source,
)
from specfmt import validate
from specfmt.cli import main
from specfmt.convert import converter, write
from specfmt.convert.common import Refused, SourceError, VerifierFacts, read_source
from specfmt.proposal import Context, Picker
from specfmt.runtime import load_draft
from specfmt.safetensors_header import read_header
from specfmt.verifier import Verifier

pytest.importorskip("transformers")

FACTS = VerifierFacts(VERIFIER, "org/verifier")
TOLERANCE = 1e-5  # float64 on both sides, but HF computes the verifier's RoPE in float32: aux states differ ~1e-7
K = 3


def converted(tmp_path, cfg: dict, tensors: dict, fmt: str = "safetensors", given: dict | None = None):
    source = write_source(tmp_path / "source", cfg, tensors, fmt)
    conversion = converter("eagle3-research")(read_source(source), FACTS, given or {})
    return write(conversion, tmp_path / "out", "specfmt convert", "eagle3-research", str(source), []), conversion


class Float64Picker(Picker):
    """Greedy, keeping each row of logits as computed (RecordingPicker rounds them to float32)."""

    def __init__(self):
        super().__init__()
        self.logits: list[torch.Tensor] = []

    def __call__(self, logits: torch.Tensor) -> tuple[int, None]:
        self.logits.append(logits.clone())
        return int(logits.argmax()), None


def proposals_match_the_research_math(tmp_path, out, cfg, src, prefixes, inputs_of, residual_after_norm=False
                                       ) -> float:
    """The converted draft's proposals over two contexts against the research forward; the max |logit| gap."""
    path = verifier_dir(tmp_path)
    verifier = Verifier.from_pretrained(path, dtype=torch.float64)
    draft, _ = load_draft(out, verifier, "strict")
    embed = src.get("embed_tokens.weight", load_file(str(path / "model.safetensors"))["model.embed_tokens.weight"])
    prompts = [torch.randint(0, 128, (9,), generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    gap = 0.0
    for prompt, hidden in zip(prompts, hf_hidden_states(path, prompts), strict=True):
        verifier.truncate(0)
        out_v = verifier.forward(prompt, draft.aux_ids)
        tokens = prompt.tolist() + [int(out_v.logits[-1].argmax())]
        draft.reset()
        picker = Float64Picker()
        drafted = draft.propose(Context(tokens, out_v.aux, out_v.last, out_v.normed), K, picker)
        research = ResearchDraft(cfg, src, prefixes, embed, residual_after_norm)
        picked, rows = research.chain(tokens, source_aux(hidden, inputs_of), K)
        assert drafted.tokens.tolist() == picked
        gap = max(gap, max(float((a - b).abs().max()) for a, b in zip(picker.logits, rows, strict=True)))
    assert gap <= TOLERANCE
    return gap


def test_a_safeailab_research_bin_converts_to_strict_and_proposes_as_the_research_math(tmp_path):
    src = source_tensors(SAFEAILAB, ["midlayer."])
    out, conversion = converted(tmp_path, SAFEAILAB, src, fmt="bin")
    assert validate(out, "strict").findings == []
    config = json.loads((out / "config.json").read_text())
    assert config["eagle_aux_hidden_state_layer_ids"] == [2, N_VERIFIER // 2, N_VERIFIER - 3]
    assert (config["norm_before_residual"], config["norm_before_fc"], config["fc_norm"], config["norm_output"]) == \
        (False, False, False, False)
    assert config["dtype"] == "float32" and config["transformer_layer_config"]["head_dim"] == 8
    subjects = {d.subject for d in conversion.decisions}
    assert {"eagle_aux_hidden_state_layer_ids", "norm_before_residual", "norm_output", "midlayer\\.(.+)"} <= subjects
    # SafeAILab captures the inputs of verifier layers 2, N//2 and N-3 (modeling_llama_kv.py)
    proposals_match_the_research_math(tmp_path, out, SAFEAILAB, src, ["midlayer."], [2, 4, 5])


def test_a_two_layer_research_draft_keeps_both_layers(tmp_path):
    cfg = dict(SAFEAILAB, num_hidden_layers=2)
    prefixes = ["midlayer.0.", "midlayer.1."]
    src = source_tensors(cfg, prefixes)
    out, _ = converted(tmp_path, cfg, src)
    names = {t.name for t in read_header(str(out / "model.safetensors"), "model.safetensors")[0]}
    assert {n.split(".")[1] for n in names if n.startswith("layers.")} == {"0", "1"}
    assert json.loads((out / "config.json").read_text())["transformer_layer_config"]["num_hidden_layers"] == 2
    proposals_match_the_research_math(tmp_path, out, cfg, src, prefixes, [2, 4, 5])


def test_specforge_ids_count_layer_outputs_and_gain_one(tmp_path):
    src = source_tensors(SPECFORGE, ["midlayer."], embed=False)
    out, conversion = converted(tmp_path, SPECFORGE, src)
    config = json.loads((out / "config.json").read_text())
    assert config["eagle_aux_hidden_state_layer_ids"] == [2, 4, 6]
    assert config["transformer_layer_config"]["tie_word_embeddings"] is False
    assert "embed_tokens.weight" not in src
    # SpecForge captures the outputs of layers 1, 3, 5: hidden_states[2], [4], [6]
    proposals_match_the_research_math(tmp_path, out, SPECFORGE, src, ["midlayer."], [2, 4, 6])
    assert any(d.subject == "transformer_layer_config.tie_word_embeddings" for d in conversion.decisions)


def test_a_wider_specforge_draft_with_fc_norm_and_llama3_rope_proposes_as_its_math(tmp_path):
    src = source_tensors(SPECFORGE_WIDE, ["midlayer."])
    out, _ = converted(tmp_path, SPECFORGE_WIDE, src)
    config = json.loads((out / "config.json").read_text())
    assert (config["target_hidden_size"], config["fc_norm"]) == (32, True)
    # no explicit ids: SpecForge's default [1, N//2-1, N-4] counts outputs, the inputs of [2, N//2, N-3]
    proposals_match_the_research_math(tmp_path, out, SPECFORGE_WIDE, src, ["midlayer."], [2, 4, 5])


def test_a_research_config_without_draft_vocab_size_reads_the_full_vocabulary(tmp_path):
    cfg = {k: v for k, v in SAFEAILAB.items() if k != "draft_vocab_size"}
    src = source_tensors(cfg, ["midlayer."])
    out, conversion = converted(tmp_path, cfg, src)
    assert "d2t" not in src and json.loads((out / "config.json").read_text())["draft_vocab_size"] == 128
    assert any(d.subject == "draft_vocab_size" and d.kind == "default" for d in conversion.decisions)
    proposals_match_the_research_math(tmp_path, out, cfg, src, ["midlayer."], [2, 4, 5])


def test_d2t_and_t2d_at_the_full_vocabulary_are_dropped_as_the_research_loader_drops_them(tmp_path):
    src = source_tensors(dict(SAFEAILAB, draft_vocab_size=127), ["midlayer."])
    src["lm_head.weight"] = torch.randn(128, 32)
    src["d2t"], src["t2d"] = torch.zeros(128, dtype=torch.long), torch.ones(128, dtype=torch.bool)
    out, conversion = converted(tmp_path, dict(SAFEAILAB, draft_vocab_size=128), src)
    assert [d.subject for d in conversion.decisions if d.kind == "dropped" and d.subject in ("d2t", "t2d")] == \
        ["d2t", "t2d"]
    assert validate(out, "strict").findings == []


def refusals(tmp_path, cfg, tensors, given=None) -> list[tuple[str, str]]:
    source = write_source(tmp_path / "source", cfg, tensors)
    with pytest.raises(Refused) as refused:
        converter("eagle3-research")(read_source(source), FACTS, given or {})
    return [(r.pointer, r.flag) for r in refused.value.refusals]


def test_explicit_ids_outside_specforge_are_refused_until_given_in_cfg9(tmp_path):
    cfg = copy.deepcopy(SAFEAILAB) | {"eagle_config": {"eagle_aux_hidden_state_layer_ids": [1, 3, 5]}}
    src = source_tensors(cfg, ["midlayer."])
    assert refusals(tmp_path, cfg, src) == [("/eagle_config/eagle_aux_hidden_state_layer_ids",
                                             "--set eagle_aux_hidden_state_layer_ids=[...] (CFG-9 ids)")]
    out, conversion = converted(tmp_path / "given", cfg, src, given={"eagle_aux_hidden_state_layer_ids": [2, 4, 6]})
    assert json.loads((out / "config.json").read_text())["eagle_aux_hidden_state_layer_ids"] == [2, 4, 6]
    assert [d.kind for d in conversion.decisions if d.subject == "eagle_aux_hidden_state_layer_ids"] == ["given"]


def test_norm_output_outside_specforge_is_refused_and_specforge_false_cannot_be_represented(tmp_path):
    src = source_tensors(SAFEAILAB, ["midlayer."])
    assert refusals(tmp_path, dict(SAFEAILAB, norm_output=True), src) == [
        ("/norm_output", "--set norm_output=true|false (the spec's meaning)")]
    src = source_tensors(SPECFORGE, ["midlayer."])
    assert [p for p, _ in refusals(tmp_path / "sf", dict(SPECFORGE, norm_output=False), src)] == ["/norm_output"]


def test_layers_that_disagree_with_num_hidden_layers_are_refused_with_the_flag(tmp_path):
    src = source_tensors(SAFEAILAB, ["midlayer.0.", "midlayer.1."])
    assert refusals(tmp_path, SAFEAILAB, src) == [
        ("/midlayer", "--set transformer_layer_config.num_hidden_layers=N")]


def test_an_fc_bias_is_refused(tmp_path):
    src = source_tensors(SAFEAILAB, ["midlayer."]) | {"fc.bias": torch.zeros(32)}
    assert [p for p, _ in refusals(tmp_path, dict(SAFEAILAB, bias=True), src)] == ["/bias"]


def test_the_cli_prints_every_decision_it_records(tmp_path, capsys):
    source = write_source(tmp_path / "source", SPECFORGE, source_tensors(SPECFORGE, ["midlayer."], embed=False))
    code = main(["convert", str(source), "--from", "eagle3-research", "--verifier", str(verifier_dir(tmp_path)),
                 "--verifier-name", "org/verifier", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out.splitlines()
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    recorded = config["specfmt_provenance"]["conversion"]["decisions"]
    assert code == 0 and printed[:-1] == [f"{d['kind']}: {d['subject']}: {d['detail']}" for d in recorded]
    assert printed[-1] == f"wrote {tmp_path / 'out'} (strict)"


def test_a_speculators_research_draft_converts_with_its_residual_order_capture_points_and_dtypes(tmp_path):
    src = speculators_research_tensors(SPECULATORS_RESEARCH)
    assert {str(t.dtype) for t in src.values() if t.is_floating_point()} == {"torch.float32", "torch.bfloat16"}
    out, conversion = converted(tmp_path, SPECULATORS_RESEARCH, src)
    assert validate(out, "strict").findings == []
    config = json.loads((out / "config.json").read_text())
    # research/eagle3 ge_data trains on HF hidden_states[3], [N//2 + 1], [-3]: CFG-9 ids 3, 5, 6 for N = 8
    assert config["eagle_aux_hidden_state_layer_ids"] == [3, N_VERIFIER // 2 + 1, N_VERIFIER - 2]
    assert (config["norm_before_residual"], config["norm_before_fc"], config["fc_norm"], config["norm_output"]) == \
        (True, False, False, False)
    assert config["dtype"] == "float32"
    stored = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(stored[n], src[n].float()) for n in ("fc.weight", "embed_tokens.weight", "lm_head.weight"))
    assert ("translated", "lineage") in {(d.kind, d.subject) for d in conversion.decisions}
    proposals_match_the_research_math(tmp_path, out, SPECULATORS_RESEARCH, src, ["layers.0."], [3, 5, 6],
                                      residual_after_norm=True)


def test_a_layout_of_no_known_lineage_is_refused_until_set_decides_residual_and_aux_ids(tmp_path):
    cfg = dict(SAFEAILAB, num_hidden_layers=2)
    src = source_tensors(cfg, ["layers.0.", "layers.1."])
    assert refusals(tmp_path, cfg, src) == [
        ("/eagle_aux_hidden_state_layer_ids", "--set eagle_aux_hidden_state_layer_ids=[...] (CFG-9 ids)"),
        ("/norm_before_residual", "--set norm_before_residual=true|false")]
    given = {"norm_before_residual": False, "eagle_aux_hidden_state_layer_ids": [2, 4, 5]}
    out, _ = converted(tmp_path / "given", cfg, src, given=given)
    proposals_match_the_research_math(tmp_path, out, cfg, src, ["layers.0.", "layers.1."], [2, 4, 5])


def test_every_pending_refusal_of_a_research_draft_is_reported_in_one_run(tmp_path):
    cfg = {k: v for k, v in SAFEAILAB.items() if k != "intermediate_size"}
    cfg |= {"eagle_config": {"eagle_aux_hidden_state_layer_ids": [1, 3, 5]}, "norm_output": True}
    src = source_tensors(SAFEAILAB, ["midlayer.0.", "midlayer.1."])
    assert sorted(p for p, _ in refusals(tmp_path, cfg, src)) == [
        "/eagle_config/eagle_aux_hidden_state_layer_ids", "/intermediate_size", "/midlayer", "/norm_output"]


def test_a_stated_head_dim_the_q_proj_rows_contradict_is_refused_naming_the_value_they_hold(tmp_path):
    # SafeAILab's cnets.py sizes heads as hidden_size // num_attention_heads whatever head_dim says
    src = source_tensors(SAFEAILAB, ["midlayer."])
    assert refusals(tmp_path, dict(SAFEAILAB, head_dim=16), src) == [
        ("/head_dim", "--set transformer_layer_config.head_dim=8")]


def wrong_input(tmp_path, name: str) -> tuple:
    """A directory `--from eagle3-research` cannot read as a research draft, built as a user might pass it."""
    if name == "speculators-checkpoint":
        return write_variant("eagle3", tmp_path / name), SourceError
    if name == "medusa-directory":
        return write_source(tmp_path / name, {"medusa_num_heads": 2, "medusa_num_layers": 1},
                            {"0.0.linear.weight": torch.zeros(4, 4), "0.1.weight": torch.zeros(8, 4)}), SourceError
    if name == "string-size":
        return write_source(tmp_path / name, dict(SAFEAILAB, hidden_size="32"),
                            source_tensors(SAFEAILAB, ["midlayer."])), SourceError
    if name == "speculators-training-state":  # its Model's state_dict before convert_checkpoint.py
        t = speculators_research_tensors(SPECULATORS_RESEARCH)
        t = {{"layers.0.hidden_norm.weight": "hidden_norm.weight", "norm.weight": "lm_head_layernorm.weight",
              "layers.0.input_layernorm.weight": "input_layernorm.weight"}.get(n, n): v for n, v in t.items()
             if n not in ("d2t", "t2d")}
        return write_source(tmp_path / name, SPECULATORS_RESEARCH, t), SourceError
    cfg = {k: v for k, v in SAFEAILAB.items() if k not in ("hidden_size", "num_attention_heads")}
    return write_source(tmp_path / name, cfg, source_tensors(SAFEAILAB, ["midlayer."])), Refused


@pytest.mark.parametrize("name", ["speculators-checkpoint", "medusa-directory", "string-size", "no-sizes",
                                  "speculators-training-state"])
def test_a_wrong_input_is_one_line_naming_the_problem_not_a_key_error(tmp_path, name, capsys):
    source, error = wrong_input(tmp_path, name)
    with pytest.raises(error):
        converter("eagle3-research")(read_source(source), FACTS, {})
    code = main(["convert", str(source), "--from", "eagle3-research", "--verifier", str(verifier_dir(tmp_path)),
                 "--verifier-name", "org/verifier", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert (code, "Traceback" in err) == ((2, False) if error is SourceError else (1, False))
    assert err.count("\n") == (1 if error is SourceError else 2) and not (tmp_path / "out").exists()


def test_a_refusal_of_the_source_and_a_missing_verifier_name_are_reported_in_one_run(tmp_path, capsys):
    source = write_source(tmp_path / "source", dict(SAFEAILAB, norm_output=True),
                          source_tensors(SAFEAILAB, ["midlayer."]))
    assert main(["convert", str(source), "--from", "eagle3-research", "--verifier", str(verifier_dir(tmp_path)),
                 "--out", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("#")[1].split(":")[0] for line in lines] == ["/norm_output", "/speculators_config/verifier"]
    assert "--verifier-name ORG/NAME" in lines[1]
