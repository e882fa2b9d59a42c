"""What every specfmt subcommand shares at the CLI boundary: usage errors, the extra that provides a missing
package, directory arguments (local paths or cached hub ids), progress on a terminal and the defaults in help.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import TextIO

from specfmt import hub
from specfmt.extras import extra_for

TRAIN_COMMANDS = ("datagen", "train")  # specfmt[train] brings every package these need


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit status 2."""


def missing_extra(command: str, module: str | None) -> str | None:
    """The extra to install for a ModuleNotFoundError of `module` in `command`, or None for a module that no extra
    provides (then the error is a bug, and is not hidden). The declaration is specfmt.extras, which the README's
    and the Install page's extras table show."""
    return extra_for(command, module)


def import_torch():
    """torch, imported without its warning that numpy is absent: no specfmt command uses numpy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
        import torch
    return torch


def local_dir(arg: str) -> Path:
    """A directory argument: the path itself when it exists or is no hub id, else the snapshot of the hub id
    `owner/name[@revision]` in the local Hugging Face cache. Raises UsageError for a hub id that is not cached."""
    path = Path(arg)
    if path.exists() or hub.parse(arg) is None:
        return path
    found = hub.snapshot(arg)
    if found is None:
        raise UsageError(hub.not_cached(arg))
    return found


def checkpoint_dir(arg: str) -> Path:
    """The checkpoint directory of a validate or inspect argument. A path that does not exist or is not a
    directory is io.not_found (spec/index.md#GEN-3); on the command line it is a usage error."""
    path = local_dir(arg)
    if not path.exists():
        raise UsageError(f"{arg}: no such directory [io.not_found]")
    if not path.is_dir():
        raise UsageError(f"{arg}: not a directory [io.not_found]; a checkpoint is a directory: pass the one that "
                         f"contains it, {path.parent}")
    return path


def config_kind(path: Path) -> str:
    """What the config.json of a directory describes: `draft` (it names speculators_model_type), `model` (a
    Hugging Face model: model_type or architectures) or `unknown` (no config.json object)."""
    from specfmt import files

    try:
        config = files.read_json(path / "config.json")  # a FIFO or a device is refused, never waited on
    except OSError:
        return "unknown"
    if not isinstance(config, dict):
        return "unknown"
    if "speculators_model_type" in config or "speculators_config" in config:
        return "draft"
    return "model" if "model_type" in config or "architectures" in config else "unknown"


class Progress:
    """A progress line on `stream`, rewritten in place, written only when `stream` is a terminal: a pipe or a log
    file receives the results alone."""

    def __init__(self, stream: TextIO):
        self.stream = stream if stream.isatty() else None
        self.shown = False

    def show(self, line: str) -> None:
        if self.stream is not None:
            print(f"\r\033[K{line}", end="", file=self.stream, flush=True)
            self.shown = True

    def clear(self) -> None:
        """Erase the line, so that what follows starts at the left margin."""
        if self.shown:
            print("\r\033[K", end="", file=self.stream, flush=True)
            self.shown = False


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append `(default: ...)` to the help of every argument whose default its help does not state already (a
    default of None or False is no value, and is not shown)."""
    for action in parser._actions:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            continue
        if action.help and "default" not in action.help:
            action.help += " (default: %(default)s)"
