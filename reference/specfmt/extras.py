"""Which extra of pyproject.toml each command, or one of its options, needs: one declaration for the README's and the
Install page's table (scripts/gen_docs.py writes both) and for the CLI's missing-package message.

The core (`pip install specfmt`) needs jsonschema and pydantic only. tests/test_extras.py runs every row with the
packages of its extra made unimportable and checks that the command names that extra, and that the core rows run
with every optional package absent.
"""

from __future__ import annotations

# The extras of pyproject.toml that bring optional packages, each with the top-level modules it installs.
EXTRAS = {
    "runtime": ("torch", "safetensors"),
    "text": ("tokenizers", "jinja2"),
    "plots": ("matplotlib",),
    "train": ("torch", "safetensors", "tokenizers", "jinja2"),
}

# (command, option or "" for the command itself, extra or "" for the core, what needs it)
NEEDS = (
    ("validate", "", "", "config.json and the safetensors headers only"),
    ("validate", "--scan-values", "runtime", "reads the tensor data"),
    ("inspect", "", "", "config.json and the safetensors headers only"),
    ("schema", "", "", "the schemas shipped in the package"),
    ("generate", "", "runtime", "the reference runtime"),
    ("generate", "--prompt", "text", "the verifier's tokenizer.json turns the text into ids"),
    ("eval", "", "runtime", "the reference runtime"),
    ("eval", "--prompts (text or chat records)", "text", "the tokenizer and the chat template"),
    ("eval", "--plot", "plots", "matplotlib draws the PNG"),
    ("datagen", "", "train", "the verifier's hidden states, and its tokenizer"),
    ("train", "", "train", "the trainer"),
    ("convert", "", "runtime", "reads and writes tensors"),
    ("upgrade", "", "", "copies the tensor files byte for byte"),
    ("export", "", "runtime", "reads and writes tensors"),
    ("conformance-adapter", "", "runtime", "the reference runtime behind the conformance protocol"),
)

COMMAND_EXTRA = {command: extra for command, option, extra, _ in NEEDS if not option}


def extra_for(command: str, module: str | None) -> str | None:
    """The extra to install for a ModuleNotFoundError of `module` in `command`: the command's own extra when it
    brings the module (datagen and train: `train`), else the first extra that does; None for a module no extra
    provides (then the error is a bug, and is not hidden)."""
    top = (module or "").partition(".")[0]
    own = COMMAND_EXTRA.get(command, "")
    if top in EXTRAS.get(own, ()):
        return own
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def install_line(extra: str) -> str:
    """The pip command that installs an extra ('' for the core)."""
    return f"pip install 'specfmt[{extra}]'" if extra else "pip install specfmt"
