"""The CLI boundary (CONTRIBUTING.md section 7): every failure is one line on stderr and an exit status, no traceback.
Exit 2 for usage mistakes, 1 for findings, 0 otherwise; a missing optional package names the extra to install.
Where the exit status and stderr of the process itself matter, the CLI runs in a subprocess."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from builders import write_variant, write_verifier
from specfmt import __version__
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
