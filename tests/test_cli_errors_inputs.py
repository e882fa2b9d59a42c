"""Hostile inputs to the readers (issue 20, section 4): for each command that reads a checkpoint, a source or a
verifier, and each hostile input (a path out of the directory, a FIFO, a symlink loop, a device, a truncated file,
a header that lies, a document of the wrong JSON type, config values that are absurd, zero, strings, infinite,
negative or booleans), the CLI answers with an exit status of 1 or 2 and at most one line on stderr naming the file,
never a traceback, a hang or an exhausted memory.

The cases run in one child process (`specfmt.cli.main` on each argv, torch imported once): each case
is bounded by an alarm (a FIFO open blocks in the kernel, and the alarm interrupts it), the child by an address
space limit (RLIMIT_AS), so a hang or an unbounded allocation fails its case instead of stopping the run. A few
cases also run as `python -m specfmt` processes of their own.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from builders import write_variant, write_verifier
from specfmt.safetensors_file import write_tensors

TIMEOUT_S = int(os.environ.get("SPECFMT_CASE_TIMEOUT", "60"))  # seconds a case may take
MEMORY_BYTES = 4 << 30  # the child's address space: an absurd size allocates past it and fails its case
VERIFIER_NAME = "org/verifier"
RUNNER = r"""
import contextlib, io, json, resource, signal, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
from specfmt.cli import main

class Hang(BaseException):  # not an Exception: no `except Exception` in the command may swallow it
    pass

def alarm(signum, frame):
    raise Hang()

signal.signal(signal.SIGALRM, alarm)
log = open(sys.argv[2], "w")
for name, argv in json.load(open(sys.argv[1])).items():
    print(json.dumps({{"case": name}}), file=log, flush=True)
    out, err = io.StringIO(), io.StringIO()
    result = {{"traceback": None}}
    signal.alarm({timeout})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                result["status"] = main(argv)
            except SystemExit as e:
                result["status"] = e.code
    except Hang:
        result["traceback"] = "hang: no answer within {timeout} s"
    except BaseException:
        result["traceback"] = traceback.format_exc()
    finally:
        signal.alarm(0)
    result.update(case=name, stdout=out.getvalue(), stderr=err.getvalue())
    print(json.dumps(result), file=log, flush=True)
"""

# Tiny configs of each --from format, in the shape their authors' code saves them (sizes of the tiny verifier).
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
         "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 1, "vocab_size": 128,
         "rms_norm_eps": 1e-6, "max_position_embeddings": 512, "torch_dtype": "float32"}
SOURCES = {
    "eagle-research": LLAMA,
    "eagle3-research": dict(LLAMA, architectures=["LlamaForCausalLMEagle3"], draft_vocab_size=40, head_dim=8),
    "zlab-dflash": dict(LLAMA, architectures=["DFlashDraftModel"], model_type="qwen3", block_size=4, head_dim=8,
                        num_target_layers=6, dflash_config={"mask_token_id": 120, "target_layer_ids": [0, 2, 4]}),
    "medusa": {"medusa_num_heads": 2, "medusa_num_layers": 1, "hidden_size": 32, "vocab_size": 128,
               "base_model_name_or_path": VERIFIER_NAME},
    "mlp-speculator": {"architectures": ["MLPSpeculatorPreTrainedModel"], "model_type": "mlp_speculator",
                       "emb_dim": 32, "inner_dim": 24, "n_predict": 2, "n_candidates": 5, "vocab_size": 128,
                       "scale_input": False, "tie_weights": False, "top_k_tokens_per_head": [4, 3]},
    "mtp": dict(LLAMA, architectures=["MiMoForCausalLM"], model_type="mimo", num_hidden_layers=6,
                num_nextn_predict_layers=1),
}
# Where each base keeps the facts a reader computes with: (layer count, vocabulary, width, attention heads).
FACTS = {
    "eagle-research": ("/num_hidden_layers", "/vocab_size", "/hidden_size", "/num_attention_heads"),
    "eagle3-research": ("/num_hidden_layers", "/vocab_size", "/hidden_size", "/num_attention_heads"),
    "zlab-dflash": ("/num_hidden_layers", "/vocab_size", "/hidden_size", "/num_attention_heads"),
    "medusa": ("/medusa_num_layers", "/vocab_size", "/hidden_size", "/medusa_num_heads"),
    "mlp-speculator": ("/n_predict", "/vocab_size", "/emb_dim", "/emb_dim"),  # inner_dim 0 is valid (fms)
    "mtp": ("/num_hidden_layers", "/vocab_size", "/hidden_size", "/num_attention_heads"),
    "speculators": ("/transformer_layer_config/num_hidden_layers", "/transformer_layer_config/vocab_size",
                    "/transformer_layer_config/hidden_size", "/transformer_layer_config/num_attention_heads"),
    "draft": ("/transformer_layer_config/num_hidden_layers", "/transformer_layer_config/vocab_size",
              "/transformer_layer_config/hidden_size", "/transformer_layer_config/num_attention_heads"),
    "verifier": ("/num_hidden_layers", "/vocab_size", "/hidden_size", "/num_attention_heads"),
}


def weights_file(path: Path) -> Path:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        return path / sorted(set(json.loads(index.read_text())["weight_map"].values()))[0]
    return path / "model.safetensors"


def set_pointer(path: Path, ptr: str, raw: str) -> None:
    """config.json with the member at `ptr` replaced by the JSON text `raw` (1e400 must stay as written)."""
    config = json.loads((path / "config.json").read_text())
    *parents, last = ptr.strip("/").split("/")
    node = config
    for part in parents:
        node = node[part]
    node[last] = "@@RAW@@"
    (path / "config.json").write_text(json.dumps(config).replace('"@@RAW@@"', raw))


def lying_header(path: Path) -> None:
    """A header that claims a 1000 x 1000 float32 tensor in a file of 16 data bytes."""
    raw = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(16))


def escape(path: Path, absolute: bool) -> None:
    """The weights moved out of the directory and an index naming them there, by `../` or by absolute path."""
    weights = weights_file(path)
    outside = path.parent / f"{path.name}-outside.safetensors"
    shutil.move(weights, outside)
    names = list(json.loads(outside.read_bytes()[8:8 + struct.unpack("<Q", outside.read_bytes()[:8])[0]]))
    target = str(outside) if absolute else f"../{outside.name}"
    index = path / "model.safetensors.index.json"
    old = json.loads(index.read_text())["weight_map"] if index.is_file() else {}
    weight_map = {**{k: v for k, v in old.items() if v != weights.name},
                  **{n: target for n in names if n != "__metadata__"}}
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def replace(path: Path, make) -> None:
    path.unlink()
    make(path)


def fact(i: int, raw: str):
    return lambda path, facts: set_pointer(path, facts[i], raw)


# Each hostile input: a function of (the copied base directory, its FACTS pointers) that breaks it.
INPUTS = {
    "index-dotdot": lambda p, f: escape(p, absolute=False),
    "index-absolute": lambda p, f: escape(p, absolute=True),
    "index-array": lambda p, f: (p / "model.safetensors.index.json").write_text("[]"),
    "index-null": lambda p, f: (p / "model.safetensors.index.json").write_text("null"),
    "index-string": lambda p, f: (p / "model.safetensors.index.json").write_text('"model.safetensors"'),
    "index-value-int": lambda p, f: (p / "model.safetensors.index.json").write_text('{"weight_map": {"w": 5}}'),
    "weights-fifo": lambda p, f: replace(weights_file(p), os.mkfifo),
    "config-fifo": lambda p, f: replace(p / "config.json", os.mkfifo),
    "weights-symlink-loop": lambda p, f: replace(weights_file(p), lambda w: os.symlink(w.name, w)),
    "weights-dev-zero": lambda p, f: replace(weights_file(p), lambda w: os.symlink("/dev/zero", w)),
    "weights-truncated": lambda p, f: weights_file(p).write_bytes(weights_file(p).read_bytes()[:100]),
    "weights-header-lies": lambda p, f: lying_header(weights_file(p)),
    "config-array": lambda p, f: (p / "config.json").write_text("[1, 2]"),
    "config-null": lambda p, f: (p / "config.json").write_text("null"),
    "config-string": lambda p, f: (p / "config.json").write_text('"config"'),
    "layers-1e9": fact(0, "1000000000"),
    "vocab-1e12": fact(1, "1000000000000"),
    "width-1e9": fact(2, "1000000000"),
    "heads-0": fact(3, "0"),
    "width-string": fact(2, '"32"'),
    "width-1e400": fact(2, "1e400"),
    "width-negative": fact(2, "-32"),
    "layers-boolean": fact(0, "true"),
}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    return build_bases(tmp_path_factory.mktemp("bases"))


def build_bases(root: Path) -> dict[str, Path]:
    """One intact directory per kind of input: a verifier, a strict draft, each --from format's source."""
    verifier = write_verifier(root / "verifier")
    draft = write_variant("eagle3", root / "draft")
    found = {"verifier": verifier, "draft": draft, "speculators": draft}
    weights = {"w": torch.zeros(4, 32)}
    for fmt, config in SOURCES.items():
        found[fmt] = root / fmt
        found[fmt].mkdir()
        (found[fmt] / "config.json").write_text(json.dumps(config))
        write_tensors(found[fmt] / "model.safetensors", weights, {"format": "pt"})
    (root / "prompts.jsonl").write_text('{"prompt_ids": [1, 2, 3]}\n')
    return found


def commands(bases: dict[str, Path], tmp: Path) -> dict[str, tuple[str, object]]:
    """Command name -> (the base it breaks, argv of the broken directory `src` and a fresh `out`)."""
    verifier, draft, prompts = str(bases["verifier"]), str(bases["draft"]), str(bases["verifier"].parent /
                                                                            "prompts.jsonl")
    found = {f"convert-{fmt}": (fmt, lambda src, out, fmt=fmt: [
        "convert", src, "--from", fmt, "--verifier", verifier, "--verifier-name", VERIFIER_NAME, "--out", out])
        for fmt in [*SOURCES, "speculators"]}
    found.update({
        "upgrade": ("draft", lambda src, out: ["upgrade", src, "--out", out, "--verifier", verifier,
                                               "--verifier-name", VERIFIER_NAME]),
        "export": ("draft", lambda src, out: ["export", src, "--for", "vllm", "--out", out]),
        "validate": ("draft", lambda src, out: ["validate", src]),
        "inspect": ("draft", lambda src, out: ["inspect", src]),
        "generate-draft": ("draft", lambda src, out: ["generate", "--verifier", verifier, "--draft", src,
                                                      "--prompt-ids", "1", "2", "--max-new-tokens", "2"]),
        "eval-draft": ("draft", lambda src, out: ["eval", "--verifier", verifier, "--draft", src, "--prompts",
                                                  prompts, "--max-new-tokens", "2", "--threads", "1"]),
        "generate-verifier": ("verifier", lambda src, out: ["generate", "--verifier", src, "--draft", draft,
                                                            "--prompt-ids", "1", "2", "--max-new-tokens", "2"]),
        "eval-verifier": ("verifier", lambda src, out: ["eval", "--verifier", src, "--draft", draft, "--prompts",
                                                        prompts, "--max-new-tokens", "2", "--threads", "1"]),
    })
    return found


COMMANDS = [*(f"convert-{fmt}" for fmt in [*SOURCES, "speculators"]), "upgrade", "export", "validate", "inspect",
            "generate-draft", "eval-draft", "generate-verifier", "eval-verifier"]
# The commands that validate a checkpoint first and report every finding, one a line (validate and inspect on
# stdout, upgrade and export on stderr with a summary line, generate and eval on stdout); the others fail on one line.
REPORTERS = ("validate", "inspect", "upgrade", "export", "generate-draft", "eval-draft")
NAMES = ("config.json", "model.safetensors", "index.json", "outside")


def run_cases(bases: dict[str, Path], tmp: Path) -> dict[tuple[str, str], dict]:
    """Every hostile input given to every command, in one child process (one torch import) and, after a case that
    hung, in another for the cases left."""
    cases = {}
    for command, (base, argv) in commands(bases, tmp).items():
        for name, breaks in INPUTS.items():
            src = tmp / command / name / "src"
            shutil.copytree(bases[base], src, symlinks=True)
            breaks(src, FACTS[base])
            cases[f"{command} {name}"] = argv(str(src), str(tmp / command / name / "out"))
    done: dict[str, dict] = {}
    while len(done) < len(cases):
        done.update(run_child({k: v for k, v in cases.items() if k not in done}, tmp / f"child{len(done)}"))
    return {tuple(key.split(" ")): result for key, result in done.items()}


def run_child(cases: dict[str, list[str]], tmp: Path) -> dict[str, dict]:
    """The cases run in order in one child, until they are done or one of them stops answering: the child is
    killed when its log shows no progress for TIMEOUT_S + 30 s (a read blocked in native code may never see the
    alarm), and that case is a hang."""
    tmp.mkdir()
    (tmp / "cases.json").write_text(json.dumps(cases))
    log = tmp / "results.jsonl"
    script = RUNNER.format(memory=MEMORY_BYTES, timeout=TIMEOUT_S)
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp / "cases.json"), str(log)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, since = -1, time.monotonic()
    while child.poll() is None and time.monotonic() - since < TIMEOUT_S + 30:
        size = log.stat().st_size if log.exists() else 0
        seen, since = (size, time.monotonic()) if size != seen else (seen, since)
        time.sleep(0.2)
    if child.poll() is None:
        child.kill()
    crash = child.communicate()[1][-2000:]
    done: dict[str, dict] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        record = json.loads(line)
        done[record["case"]] = record if "stdout" in record else {
            "traceback": f"hang or crash: the case never finished {crash}", "status": None, "stderr": ""}
    if not done:  # the child failed before its first case
        first = next(iter(cases))
        done[first] = {"traceback": f"the child failed to start: {crash}", "status": None, "stderr": ""}
    return done


@pytest.fixture(scope="module")
def results(bases, tmp_path_factory) -> dict[tuple[str, str], dict]:
    return run_cases(bases, tmp_path_factory.mktemp("cases"))


@pytest.mark.parametrize("hostile", list(INPUTS))
@pytest.mark.parametrize("command", COMMANDS)
def test_a_hostile_input_is_one_line_naming_the_file_never_a_traceback_or_a_hang(results, command, hostile):
    result = results[command, hostile]
    assert result["traceback"] is None, result["traceback"][-2000:]
    assert result["status"] in (1, 2), result
    said = result["stderr"] + result["stdout"]
    if command not in REPORTERS:
        assert len(result["stderr"].splitlines()) == 1, result["stderr"]
        said = result["stderr"]
    assert any(name in said for name in NAMES), said


def limited_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


# A verifier's config is not validated as a draft's is: the values its RoPE and attention compute with.
VERIFIER_VALUES = {"rope-yarn": {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
                   "rope-string": {"rope_scaling": "linear"}, "rope-list": {"rope_scaling": [1]},
                   "rope-factor-string": {"rope_scaling": {"rope_type": "llama3", "factor": "8"}},
                   "rope-parameters-string": {"rope_parameters": "x"}, "theta-string": {"rope_theta": "1e4"},
                   "kv-heads-3": {"num_key_value_heads": 3}, "heads-8": {"num_attention_heads": 8},
                   "head-dim-7": {"head_dim": 7}, "intermediate-1e9": {"intermediate_size": 10**9},
                   "positions-0": {"max_position_embeddings": 0}}


@pytest.mark.parametrize("value", list(VERIFIER_VALUES))
def test_a_verifier_config_value_the_runtime_cannot_compute_with_is_one_line_naming_the_verifier(bases, tmp_path,
                                                                                                 value, capsys):
    from specfmt.cli import main

    verifier = tmp_path / "verifier"
    shutil.copytree(bases["verifier"], verifier)
    config = json.loads((verifier / "config.json").read_text())
    (verifier / "config.json").write_text(json.dumps({**config, **VERIFIER_VALUES[value]}))
    code = main(["generate", "--verifier", str(verifier), "--draft", str(bases["draft"]), "--prompt-ids", "1", "2",
                 "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and str(verifier) in err, err


@pytest.mark.parametrize(("command", "hostile"), [("convert-eagle-research", "weights-fifo"),
                                                  ("convert-mtp", "index-dotdot"),
                                                  ("generate-verifier", "index-absolute"),
                                                  ("generate-verifier", "heads-0"),
                                                  ("convert-mlp-speculator", "layers-1e9"),
                                                  ("eval-verifier", "config-fifo")])
def test_the_python_m_specfmt_process_answers_in_one_line_within_its_time_and_memory(bases, tmp_path, command,
                                                                                     hostile):
    base, argv = commands(bases, tmp_path)[command]
    src = tmp_path / "src"
    shutil.copytree(bases[base], src, symlinks=True)
    INPUTS[hostile](src, FACTS[base])
    proc = subprocess.run([sys.executable, "-m", "specfmt", *argv(str(src), str(tmp_path / "out"))],
                          capture_output=True, text=True, timeout=TIMEOUT_S, preexec_fn=limited_memory)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (1, 2), proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and any(name in proc.stderr for name in NAMES), proc.stderr


@pytest.mark.parametrize("text", ["[]", "null", '"x"'])
def test_eval_with_a_tokenizer_config_that_is_no_object_is_one_line_naming_it(tmp_path, text):
    verifier = write_verifier(tmp_path / "verifier", tokenizer=True)
    (verifier / "tokenizer_config.json").write_text(text)
    draft = write_variant("eagle3", tmp_path / "draft")
    (tmp_path / "prompts.txt").write_text("w1 w2 w3\n")
    proc = subprocess.run([sys.executable, "-m", "specfmt", "eval", "--verifier", str(verifier), "--draft", str(draft),
                           "--prompts", str(tmp_path / "prompts.txt"), "--max-new-tokens", "2", "--threads", "1"],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert "Traceback" not in proc.stderr and proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "tokenizer_config.json" in proc.stderr, proc.stderr


@pytest.mark.parametrize("hostile", ["weights-fifo", "weights-dev-zero", "weights-header-lies"])
def test_export_for_sglang_refuses_a_verifier_weights_file_it_cannot_read_naming_it(bases, tmp_path, hostile):
    verifier = tmp_path / "verifier"
    shutil.copytree(bases["verifier"], verifier, symlinks=True)
    INPUTS[hostile](verifier, FACTS["verifier"])
    proc = subprocess.run([sys.executable, "-m", "specfmt", "export", str(bases["draft"]), "--for", "sglang", "--out",
                           str(tmp_path / "out"), "--verifier", str(verifier)], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr
    assert any(str(verifier / "model.safetensors") in line for line in proc.stderr.splitlines()), proc.stderr


@pytest.mark.parametrize("file", ["generation_config.json", "config.json"])
def test_eval_without_a_tokenizer_reads_the_verifiers_eos_ids_refusing_a_document_that_is_no_object(bases, tmp_path,
                                                                                                      file, capsys):
    from specfmt.cli import main

    verifier = tmp_path / "verifier"
    shutil.copytree(bases["verifier"], verifier)
    (verifier / "generation_config.json").write_text('{"eos_token_id": 2}')
    (verifier / file).write_text("[2]")
    (tmp_path / "prompts.jsonl").write_text('{"prompt_ids": [1, 2]}\n')
    code = main(["eval", "--verifier", str(verifier), "--draft", str(bases["draft"]), "--prompts",
                 str(tmp_path / "prompts.jsonl"), "--max-new-tokens", "2", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and file in err, err
