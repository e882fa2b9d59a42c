"""The CLI boundary (CONTRIBUTING.md section 7): every failure is one line on stderr and an exit status, no traceback.
Exit 2 for usage mistakes, 1 for findings, 0 otherwise; a missing optional package names the extra to install.
Where the exit status and stderr of the process itself matter, the CLI runs in a subprocess."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from builders import VERIFIER_CONFIG, sigint_default, write_variant, write_verifier
from specfmt import __version__
from specfmt.algorithms import ALGORITHMS
from specfmt.cli import main
from specfmt.schemas import VERSION


def specfmt(*argv: str, blocked: tuple[str, ...] = (), **kwargs) -> subprocess.CompletedProcess:
    """`python -m specfmt ARGV`; with `blocked`, run where importing those packages fails as if not installed."""
    if not blocked:
        return subprocess.run([sys.executable, "-m", "specfmt", *argv], capture_output=True, text=True, **kwargs)
    code = (f"import sys; sys.modules.update(dict.fromkeys({list(blocked)!r})); from specfmt.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, **kwargs)


def one_line_error(proc: subprocess.CompletedProcess, status: int = 2) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == status, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    return proc.stderr


def usage_line(capsys, argv: list[str]) -> str:
    """stderr of `specfmt ARGV` run in this process (a traceback would fail the test as an exception), checked to
    be one line with exit status 2."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.endswith("\n"), (status, err)
    return err


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return write_verifier(root / "verifier", tokenizer=True), write_variant("eagle3", root / "draft")


def generate_args(verifier, draft, *more: str) -> list[str]:
    return ["generate", "--verifier", str(verifier), "--draft", str(draft), *more]


def closed_stdout(argv: list[str], buffered: bool) -> tuple[int, str]:
    """Exit status and stderr of `python -m specfmt ARGV` whose stdout reader has gone, as `| head` leaves it
    once it has its lines (closed here before the first write). Python buffers a pipe unless PYTHONUNBUFFERED."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({} if buffered else
                                                                              {"PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "specfmt", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=60), err


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", ["schema", "validate", "inspect"])
def test_a_stdout_closed_early_ends_the_command_quietly_with_the_sigpipe_status(dirs, command, buffered):
    argv = ["schema", "eagle3"] if command == "schema" else [command, str(dirs[1])]
    assert closed_stdout(argv, buffered) == (141, "")  # 128 + SIGPIPE: what a shell shows for `cat big | head`


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_help_to_a_closed_stdout_is_quiet(buffered):
    status, err = closed_stdout(["--help"], buffered)
    assert err == ""
    assert status == (141 if buffered else 0)  # unbuffered, argparse's own write meets the closed pipe and ignores it


def test_python_dash_m_specfmt_prints_the_package_and_format_versions():
    proc = specfmt("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"specfmt {__version__} (format {VERSION})\n"


def test_validate_inspect_and_schema_never_import_torch(dirs):
    code = ("import sys; from specfmt.cli import main; "
            f"main(['validate', {str(dirs[1])!r}]); main(['inspect', {str(dirs[1])!r}]); main(['schema', 'config']); "
            "print('imported:', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'safetensors', 'numpy', "
            "'tokenizers'}), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr == "imported: []\n"


def test_a_missing_path_is_a_usage_error_in_one_line(tmp_path):
    err = one_line_error(specfmt("validate", str(tmp_path / "nope")))
    assert err == f"specfmt validate: {tmp_path / 'nope'}: no such directory [io.not_found]\n"


def test_a_config_file_given_for_its_directory_says_to_pass_the_directory(dirs):
    err = one_line_error(specfmt("validate", str(dirs[1] / "config.json")))
    assert "config.json: not a directory [io.not_found]" in err
    assert err.endswith(f"pass the one that contains it, {dirs[1]}\n")


def test_a_missing_verifier_directory_is_one_line_not_a_file_not_found_traceback(dirs, tmp_path):
    err = one_line_error(specfmt(*generate_args(tmp_path / "missing", dirs[1], "--prompt-ids", "1")))
    assert err == f"specfmt generate: --verifier {tmp_path / 'missing'}: no such directory\n"


def test_a_draft_given_as_the_verifier_says_which_is_which(dirs):
    err = one_line_error(specfmt(*generate_args(dirs[1], dirs[1], "--prompt-ids", "1")))
    assert f"--verifier {dirs[1]} is a specfmt draft" in err and "pass it as --draft" in err


def test_a_verifier_given_as_the_draft_says_which_is_which(dirs):
    err = one_line_error(specfmt(*generate_args(dirs[0], dirs[0], "--prompt-ids", "1")))
    assert f"--draft {dirs[0]} is a Hugging Face model, not a specfmt draft" in err and "pass it as --verifier" in err


def test_swapped_verifier_and_draft_are_named_as_swapped(dirs, capsys):
    assert main(generate_args(dirs[1], dirs[0], "--prompt-ids", "1")) == 2
    assert f"are swapped: {dirs[1]} is a specfmt draft" in capsys.readouterr().err


def test_a_prompt_id_past_the_vocabulary_is_one_line_not_an_index_error(dirs, capsys):
    assert main(generate_args(*dirs, "--prompt-ids", "1", "500", "-3")) == 2
    err = capsys.readouterr().err
    assert err == ("specfmt generate: --prompt-ids: token ids outside the verifier's vocabulary; expected ids in "
                   "[0, 128), found [500, -3]\n")


def test_a_verifier_family_the_runtime_does_not_run_is_one_line(dirs, tmp_path, capsys):
    verifier = tmp_path / "gemma"
    shutil.copytree(dirs[0], verifier)
    config = json.loads((verifier / "config.json").read_text())
    (verifier / "config.json").write_text(json.dumps(config | {"model_type": "gemma"}))
    assert main(generate_args(verifier, dirs[1], "--prompt-ids", "1")) == 2
    assert capsys.readouterr().err.endswith('expected one of those model_type values, found "gemma"\n')


@pytest.mark.parametrize("argv, extra", [
    (["generate", "--verifier", "V", "--draft", "D", "--prompt-ids", "1"], "runtime"),
    (["eval", "--verifier", "V", "--draft", "D", "--prompts", "P"], "runtime"),
    (["validate", "D", "--scan-values"], "runtime"),
    (["train", "eagle3", "--verifier", "V", "--data", "P", "--out", "OUT"], "train"),
])
def test_a_command_without_torch_names_the_extra_to_install(dirs, tmp_path, argv, extra):
    paths = {"V": str(dirs[0]), "D": str(dirs[1]), "P": str(tmp_path / "prompts.txt"), "OUT": str(tmp_path / "o")}
    err = one_line_error(specfmt(*[paths.get(a, a) for a in argv], blocked=("torch",)))
    assert err == (f"specfmt {argv[0]}: needs the torch package, which is not installed: "
                   f"pip install 'specfmt[{extra}]'\n")


def test_a_text_prompt_without_tokenizers_names_the_text_extra(dirs):
    err = one_line_error(specfmt(*generate_args(*dirs, "--prompt", "w1 w2"), blocked=("tokenizers",)))
    assert err.endswith("needs the tokenizers package, which is not installed: pip install 'specfmt[text]'\n")


def test_generate_without_numpy_prints_no_warning(dirs):
    proc = specfmt(*generate_args(*dirs, "--prompt-ids", "1", "--max-new-tokens", "2"), blocked=("numpy",))
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("w")  # decoded through the verifier's tokenizer


# A draft made for another verifier (specfmt.binding): one line naming both sides, exit 2, before any forward.
WIDE = dict(VERIFIER_CONFIG, hidden_size=64, head_dim=16)  # the draft variants are made for hidden size 32


@pytest.fixture(scope="module")
def wide_verifier(tmp_path_factory):
    return write_verifier(tmp_path_factory.mktemp("wide") / "verifier", config=WIDE)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_generate_with_a_draft_for_a_narrower_verifier_names_both_hidden_sizes_in_one_line(algorithm, wide_verifier,
                                                                                          tmp_path):
    draft = write_variant(algorithm, tmp_path / algorithm)
    err = one_line_error(specfmt(*generate_args(wide_verifier, draft, "--prompt-ids", "1", "2")))
    assert (f"draft's verifier.hidden_size 32 ({draft / 'config.json'}#/speculators_config/verifier/hidden_size), "
            f"verifier's hidden_size 64 ({wide_verifier / 'config.json'}) [config.verifier_mismatch]") in err
    assert f"--draft {draft} was made for another verifier than --verifier {wide_verifier}" in err


def test_eval_with_a_draft_for_another_verifier_is_one_line_before_any_forward(dirs, wide_verifier, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt_ids": [1, 2]}\n')
    err = one_line_error(specfmt("eval", "--verifier", str(wide_verifier), "--draft", str(dirs[1]), "--prompts",
                                 str(prompts), "--threads", "1"))
    assert "verifier's hidden_size 64" in err and "[config.verifier_mismatch]" in err


# Numeric options: each bad value is its own one-line message naming its one option, exit 2.
@pytest.mark.parametrize("command, option, value, message", [
    ("generate", "--k", "0", "--k: expected an integer >= 1, found 0"),
    ("generate", "--k", "-1", "--k: expected an integer >= 1, found -1"),
    ("generate", "--max-new-tokens", "0", "--max-new-tokens: expected an integer >= 1, found 0"),
    ("generate", "--max-new-tokens", "-1", "--max-new-tokens: expected an integer >= 1, found -1"),
    ("generate", "--temperature", "-0.5", "--temperature: expected a finite number >= 0, found -0.5"),
    ("generate", "--temperature", "nan", "--temperature: expected a finite number >= 0, found nan"),
    ("eval", "--k", "0", "--k: expected an integer >= 1, found 0"),
    ("eval", "--k", "-1", "--k: expected an integer >= 1, found -1"),
    ("eval", "--max-new-tokens", "-1", "--max-new-tokens: expected an integer >= 1, found -1"),
    ("eval", "--threads", "-1", "--threads: expected an integer >= 1, found -1"),
    ("eval", "--threads", "0", "--threads: expected an integer >= 1, found 0"),
    ("eval", "--limit", "0", "--limit: expected an integer >= 1, found 0"),
])
def test_a_bad_numeric_option_is_one_line_naming_that_option_alone(dirs, tmp_path, capsys, command, option, value,
                                                                   message):
    more = ["--prompt-ids", "1"] if command == "generate" else ["--prompts", str(tmp_path / "p.jsonl")]
    argv = [command, "--verifier", str(dirs[0]), "--draft", str(dirs[1]), *more, f"{option}={value}"]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"specfmt {command}: {message}\n"


# Plausible mistakes with the prompts of eval: one line naming the file, exit 2.
@pytest.mark.parametrize("name, content, message", [
    ("empty.jsonl", b"", "no prompt in the file"),
    ("blank.jsonl", b"\n  \n", "no prompt in the file"),
    ("broken.jsonl", b"{not json\n", "broken.jsonl:1: not JSON"),
    ("array.jsonl", b"[1, 2]\n", "array.jsonl:1: a record is a JSON object"),
    ("latin1.txt", b"caf\xe9\n", "latin1.txt: not UTF-8 text (byte 3: invalid continuation byte)"),
    ("ids_text.jsonl", b'{"prompt_ids": "1 2"}\n', 'prompt 1: prompt_ids: expected a list of integer token ids, '
                                                   'found "1 2"'),
    ("ids_null.jsonl", b'{"prompt_ids": null}\n', "prompt 1: prompt_ids: expected a list of integer token ids"),
    ("ids_float.jsonl", b'{"prompt_ids": [1, 2.5]}\n', "found [1, 2.5]"),
    ("ids_huge.jsonl", b'{"prompt_ids": [1e400]}\n', "prompt 1: prompt_ids: expected a list of integer token ids"),
    ("ids_bool.jsonl", b'{"prompt_ids": [true]}\n', "found [true]"),
    ("prompt_number.jsonl", b'{"prompt": 5}\n', "prompt 1: prompt: expected a string, found 5"),
    ("no_field.jsonl", b'{"text": "hi"}\n', "needs prompt, messages or prompt_ids"),
    ("messages_text.jsonl", b'{"messages": "hi"}\n', 'prompt 1: messages: expected a list of {"role": string, '
                                                     '"content": string}, found "hi"'),
    ("messages_no_role.jsonl", b'{"messages": [{"content": "hi"}]}\n', 'found [{"content": "hi"}]'),
])
def test_a_prompt_file_mistake_is_one_line_naming_the_file(dirs, tmp_path, capsys, name, content, message):
    prompts = tmp_path / name
    prompts.write_bytes(content)
    err = usage_line(capsys, ["eval", "--verifier", str(dirs[0]), "--draft", str(dirs[1]), "--prompts", str(prompts),
                              "--threads", "1"])
    assert message in err


def test_a_prompt_directory_is_one_line_not_an_is_a_directory_error(dirs, tmp_path, capsys):
    err = usage_line(capsys, ["eval", "--verifier", str(dirs[0]), "--draft", str(dirs[1]), "--prompts", str(tmp_path)])
    assert err == f"specfmt eval: {tmp_path}: no such prompt file\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["generate", "eval"])
def test_device_cuda_without_cuda_is_one_line(dirs, tmp_path, capsys, command):
    more = ["--prompt-ids", "1"] if command == "generate" else ["--prompts", str(tmp_path / "p.jsonl")]
    err = usage_line(capsys, [command, "--verifier", str(dirs[0]), "--draft", str(dirs[1]), *more, "--device", "cuda"])
    assert err == f"specfmt {command}: --device cuda, but torch sees no GPU; pass --device cpu\n"


# --traceback: the default stays one line; with it, the line and then the error's traceback with its cause.
def test_an_error_is_one_line_without_traceback_switch(dirs):
    one_line_error(specfmt(*generate_args(*dirs, "--prompt-ids", "1", "--device", "cuda", "--k", "0")))


@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_switch_prints_the_line_then_the_traceback_before_or_after_the_command(tmp_path, where):
    argv = ["validate", str(tmp_path / "absent")]
    proc = specfmt(*(["--traceback", *argv] if where == "before" else [*argv, "--traceback"]))
    assert proc.returncode == 2
    first, rest = proc.stderr.split("\n", 1)
    assert first == f"specfmt validate: {tmp_path / 'absent'}: no such directory [io.not_found]"
    assert rest.startswith("Traceback (most recent call last):") and "in checkpoint_dir" in rest
    assert rest.rstrip().endswith(f"UsageError: {tmp_path / 'absent'}: no such directory [io.not_found]")


def test_traceback_switch_shows_the_exception_a_one_line_message_hid(dirs, tmp_path):
    prompts = tmp_path / "broken.jsonl"
    prompts.write_text('{"prompt_ids": [1, 2]}\n{"text": 5}\n')
    proc = specfmt("--traceback", "eval", "--verifier", str(dirs[0]), "--draft", str(dirs[1]), "--prompts",
                   str(prompts))
    assert proc.returncode == 2 and proc.stderr.startswith("specfmt eval: a prompt record needs prompt")
    assert "TextError: a prompt record needs prompt, messages or prompt_ids" in proc.stderr
    assert "During handling of the above exception" in proc.stderr or "direct cause" in proc.stderr


def test_a_text_prompt_for_a_verifier_without_tokenizer_is_one_line_naming_prompt_ids(dirs, tmp_path, capsys):
    verifier = write_verifier(tmp_path / "verifier")  # no tokenizer.json
    err = usage_line(capsys, generate_args(verifier, dirs[1], "--prompt", "w1 w2"))
    assert err == (f"specfmt generate: --prompt needs the verifier's tokenizer, and {verifier / 'tokenizer.json'} "
                   "is absent; pass --prompt-ids\n")


def test_a_prompt_file_that_does_not_exist_is_one_line(dirs, tmp_path, capsys):
    err = usage_line(capsys, ["eval", "--verifier", str(dirs[0]), "--draft", str(dirs[1]), "--prompts",
                              str(tmp_path / "absent.jsonl")])
    assert err == f"specfmt eval: {tmp_path / 'absent.jsonl'}: no such prompt file\n"


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_an_eval_output_in_a_missing_directory_is_one_line_before_the_run(dirs, tmp_path, capsys, option):
    target, prompts = tmp_path / "missing" / "result", tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt_ids": [1, 2]}\n')
    err = usage_line(capsys, ["eval", "--verifier", str(dirs[0]), "--draft", str(dirs[1]), "--prompts", str(prompts),
                              "--max-new-tokens", "2", "--threads", "1", option, str(target)])
    assert err == f"specfmt eval: {option} {target}: no directory {target.parent} to write it in\n"


@pytest.mark.parametrize("algorithm, message", [("medusa", "medusa cannot propose 5 tokens with 3 heads"),
                                                ("mlp_speculator", "mlp_speculator cannot propose 5 tokens with "
                                                                   "n_predict 3")])
def test_generate_with_more_drafts_than_the_draft_has_heads_is_one_line_naming_k(dirs, tmp_path, capsys, algorithm,
                                                                                  message):
    draft = write_variant(algorithm, tmp_path / algorithm)
    err = usage_line(capsys, generate_args(dirs[0], draft, "--prompt-ids", "1", "2", "--k", "5"))
    assert err == f"specfmt generate: --k 5: {message}\n"


def test_ctrl_c_during_eval_is_one_line_and_status_130(dirs, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt_ids": [1, 2]}\n' * 200)
    proc = subprocess.Popen([sys.executable, "-m", "specfmt", "eval", "--verifier", str(dirs[0]), "--draft",
                             str(dirs[1]), "--prompts", str(prompts), "--threads", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    first = proc.stderr.readline()  # the first prompt is done: decoding is under way
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    status = proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    assert first.startswith("eval: prompt 1/200")
    assert "Traceback" not in rest and rest.splitlines()[-1] == "specfmt eval: interrupted"
    assert status == 130


@pytest.mark.parametrize("fmt", ["eagle-research", "eagle3-research", "medusa", "mlp-speculator", "mtp",
                                 "speculators", "zlab-dflash"])
def test_converting_a_verifier_by_mistake_is_short_lines_and_no_traceback(fmt, dirs, tmp_path, capsys):
    verifier = str(dirs[0])
    status = main(["convert", verifier, "--from", fmt, "--verifier", verifier, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status in (1, 2) and "Traceback" not in err and err.strip()
    assert max(map(len, err.splitlines())) < 400, err  # the source's tensor names are sampled, not all listed
    assert not (tmp_path / "out").exists()
