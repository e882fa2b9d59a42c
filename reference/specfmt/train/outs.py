"""What `specfmt datagen` and `specfmt train` may write to, checked before any work starts (specfmt.publish's
rules): never the working directory, a parent of it, an input (the verifier, a data file, a cache) or a directory
holding one; an existing --out only when it is what the command wrote (a datagen cache, a draft that `specfmt
train` wrote, a train work directory) or --overwrite says so.
"""

from __future__ import annotations

from pathlib import Path

from specfmt.files import read_json
from specfmt.publish import check_out, looks_like_checkpoint
from specfmt.train.datagen import is_cache

WORK_ENTRIES = ("checkpoint", "log.jsonl", "data", "train.lock")  # what train puts in its work directory


def inputs(verifier: str, specs: list[str]) -> list[Path]:
    """The paths a command reads: the verifier and every data spec's file or cache (built-in sets are none)."""
    paths = [Path(verifier)]
    for spec in specs:
        source = spec.removeprefix("distill:")
        if not source.startswith("builtin:"):
            paths.append(Path(source))
    return paths


def portable(argv: list[str], home: str | None = None) -> list[str]:
    """A command line as a draft's provenance records it: an argument under the user's home directory written
    `~/...`, which a shell expands on any machine, instead of this machine's absolute home."""
    home = (home or str(Path.home())).rstrip("/")
    return ["~" + a[len(home):] if home and (a == home or a.startswith(home + "/")) else a for a in argv]


def is_train_output(path: Path) -> bool:
    """Whether `path` is a draft that `specfmt train` wrote (its config's provenance says so)."""
    try:
        config = read_json(path / "config.json")
    except OSError:
        return False
    provenance = config.get("specfmt_provenance") if isinstance(config, dict) else None
    return isinstance(provenance, dict) and provenance.get("tool") == "specfmt train"


def not_a_work_dir(path: Path) -> str | None:
    """A KindCheck for --work: an empty directory or one holding only what train writes there."""
    if not path.is_dir() or path.is_symlink():
        return "is not a directory"
    foreign = sorted(p.name for p in path.iterdir() if p.name not in WORK_ENTRIES and not p.name.startswith("."))
    return f"holds {foreign[0]!r}, so it is not a train work directory" if foreign else None


def check_datagen_out(out: str, verifier: str, specs: list[str], overwrite: bool) -> Path:
    """The datagen --out, refused unless new, a datagen cache (rewritten) or --overwrite replaces it."""
    path = Path(out)
    return check_out(path, protect=inputs(verifier, specs), overwrite=overwrite or is_cache(path))


def check_train_outs(out: str, work: str | None, verifier: str, specs: list[str], overwrite: bool
                     ) -> tuple[Path, Path]:
    """(--out, --work) of train: the draft (one that train wrote, or any checkpoint with --overwrite) and its work
    directory (default OUT.work; a train work directory or a new one); neither inside the other nor an input."""
    read = inputs(verifier, specs)
    path = check_out(out, protect=read, overwrite=True)  # the working directory and the inputs, first
    work_dir = Path(work) if work is not None else path.with_name(path.name + ".work")
    check_out(work_dir, protect=[*read, path], overwrite=True, kind_check=not_a_work_dir)
    check_out(path, protect=[*read, work_dir], overwrite=overwrite or is_train_output(path),
              kind_check=looks_like_checkpoint)
    return Path(out), work_dir
