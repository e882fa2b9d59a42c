"""Hub ids on the command line (`org/draft`, `org/draft@v2`, as vLLM's --speculative-config takes them): found
in the local Hugging Face cache, never downloaded. huggingface_hub is not imported (it may be absent); the cache
is read as it writes it: `models--{owner}--{name}/refs/{revision}` holds a commit hash, and
`models--{owner}--{name}/snapshots/{hash}/` the files of that commit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from specfmt import files
from specfmt.schemas import load

REVISION = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")  # a branch, a tag or a commit hash
COMMIT = re.compile(r"[0-9a-f]{40}")


def parse(text: str) -> tuple[str, str] | None:
    """(`owner/name`, revision) of a hub id `owner/name[@revision]`, the revision `main` when not given; None
    for anything else. The repository part follows CFG-8's hub id pattern, with the owner required."""
    repo, at, revision = text.partition("@")
    hub_id = load("config.strict.schema.json")["$defs"]["verifier"]["properties"]["name_or_path"]["pattern"]
    if "/" not in repo or not re.fullmatch(hub_id, repo):
        return None
    if at and (not REVISION.fullmatch(revision) or ".." in revision):
        return None
    return repo, revision or "main"


def cache_dir() -> Path:
    """Where huggingface_hub keeps models: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
    ($XDG_CACHE_HOME/huggingface/hub when that is set)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")  # the second: legacy name
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def snapshot(text: str) -> Path | None:
    """The cached snapshot directory of the hub id `text`, or None when it is not a hub id or not cached."""
    parsed = parse(text)
    if parsed is None:
        return None
    repo, revision = parsed
    root = cache_dir() / ("models--" + repo.replace("/", "--"))
    ref = root / "refs" / revision
    try:  # a ref holds a 40-character hash; one that is longer or unreadable names no snapshot
        commit = files.read_bytes(ref, 256).decode("utf-8", "replace").strip() if ref.is_file() else revision
    except files.FileRefused:
        return None
    folder = root / "snapshots" / commit
    return folder if COMMIT.fullmatch(commit) and folder.is_dir() else None


def not_cached(text: str) -> str:
    """The one-line message for a hub id that is not in the cache: the id, where it was looked for, what to run."""
    repo, revision = parse(text) or (text, "main")
    option = "" if revision == "main" else f" --revision {revision}"
    return (f"{text}: no such directory, and hub id {repo} (revision {revision}) is not in the Hugging Face cache "
            f"{cache_dir()}; specfmt never downloads: run `huggingface-cli download {repo}{option}` first")


def name_of(path: Path) -> str | None:
    """The hub id `owner/name` of a path inside a cache snapshot (`.../models--owner--name/snapshots/<hash>/...`),
    or None for any other path."""
    for part in Path(path).resolve().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            owner, _, name = part.removeprefix("models--").partition("--")
            return f"{owner}/{name}"
    return None
