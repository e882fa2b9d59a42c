"""publish: the one way specfmt writes a directory (a checkpoint, an export, a datagen cache, a training state).

Spec: spec/layout.md#SFT-1 (a checkpoint is written atomically, beside its destination). A command writes only under
its --out, staged beside it (same filesystem), fsynced, given the usual mode and renamed into place; it never
deletes what it did not write unless --overwrite says so, and never the working directory, the source, or a parent
of either (check_out). On any error the staging directory is removed.

Crash guarantee: after a kill -9 at any point, `out` holds the old complete output or the new complete output,
nothing else -- at once where the kernel can swap two directories (Linux renameat2 RENAME_EXCHANGE), else after
the next publish to the same `out` at the latest (it moves back an old output left aside inside the overwrite
window). Staging and old directories are named `.{name}.specfmt-staging-{pid}-*` / `.{name}.specfmt-old-{pid}-*`
beside `out`; a later publish removes those whose process is gone, and never touches any other name.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

STAGING = "specfmt-staging"
OLD = "specfmt-old"
KindCheck = Callable[[Path], "str | None"]  # an existing --out -> why it is not what the command writes, or None


class UnsafeOut(ValueError):
    """An --out that publishing would make lose data: one line naming the path, why, and what to do."""


class DiskFull(OSError):
    """The disk filled while staging: one line naming where; nothing was left behind and `out` is untouched."""


def looks_like_checkpoint(path: Path) -> str | None:
    """A KindCheck for commands that write a checkpoint directory: a file, an empty directory or one holding a
    config.json may be replaced; any other directory is not a checkpoint and is refused."""
    if not path.is_dir() or path.is_symlink():
        return None
    if (path / "config.json").is_file() or not any(path.iterdir()):
        return None
    return "holds no config.json, so it is not a checkpoint"


def _absolute(out: str | os.PathLike) -> Path:
    """`out` absolute, its parent's symlinks resolved and its own name kept (the name publish renames)."""
    if str(out) in ("", "."):
        raise UnsafeOut(f"--out {str(out)!r} is the working directory; name a new directory, e.g. --out draft")
    path = Path(os.path.abspath(out))
    return path.parent.resolve() / path.name if path.name else path


def _refuse_unsafe(path: Path, protect: Iterable[str | os.PathLike]) -> None:
    real = path.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        what = "the working directory" if real == cwd else "a parent of the working directory"
        raise UnsafeOut(f"--out {path} is {what}; name a new directory for the output")
    for i, source in enumerate(protect):
        src, what = Path(source).resolve(), "the source" if i == 0 else "the input"
        if real == src or src in real.parents or real in src.parents:
            how = "is" if real == src else ("is inside" if src in real.parents else "is a parent of")
            raise UnsafeOut(f"--out {path} {how} {what} {src}; choose an --out outside {what}")


def check_out(out: str | os.PathLike, *, protect: Iterable[str | os.PathLike] = (), overwrite: bool = False,
              kind_check: KindCheck | None = None) -> Path:
    """The absolute path to publish `out` at, or UnsafeOut: '' or '.', the cwd or a parent of it, a protected path
    (the source first, then other inputs), inside one or a parent of one; an existing `out` without `overwrite`;
    with `overwrite`, an existing `out` that `kind_check` says is not what the command writes."""
    path = _absolute(out)
    _refuse_unsafe(path, protect)
    if not os.path.lexists(path):
        return path
    if not overwrite:
        what = "is a file" if not path.is_dir() else "exists"
        raise UnsafeOut(f"--out {path} {what}; pass --overwrite to replace it, or choose another --out")
    reason = kind_check(path) if kind_check is not None else None
    if reason:
        raise UnsafeOut(f"--out {path} {reason}; refusing to replace it even with --overwrite: choose another --out")
    return path


def _owned(path: Path, kind: str) -> list[tuple[Path, int]]:
    """This helper's `kind` directories beside `path`, with the pid that made each."""
    found = []
    for entry in path.parent.glob(f".{glob_escape(path.name)}.{kind}-*"):
        pid, _, _ = entry.name[len(path.name) + len(kind) + 3:].partition("-")
        if pid.isdigit():
            found.append((entry, int(pid)))
    return sorted(found)


def glob_escape(name: str) -> str:
    """`name` as a glob pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows signal 0 is CTRL_C_EVENT: never probe, never remove
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(path: Path) -> None:
    """Undo what a killed publish to `path` left: an old output moved aside while `path` is missing goes back, and
    staging and old directories of processes that are gone are removed."""
    olds = [entry for entry, pid in _owned(path, OLD) if not _alive(pid)]
    if olds and not os.path.lexists(path):
        os.rename(olds.pop(), path)
    for entry, pid in _owned(path, STAGING):
        if not _alive(pid):
            _remove(entry)
    for entry in olds:
        _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _seal(staging: Path, mode: int) -> None:
    """fsync every file and directory under `staging` and give them the usual modes (dirs `mode`, files 0o644,
    both less the umask)."""
    umask = _umask()
    for root, _dirs, files in os.walk(staging, topdown=False):
        for name in files:
            file = os.path.join(root, name)
            os.chmod(file, 0o644 & ~umask)
            _fsync(file, os.O_RDONLY)
        os.chmod(root, mode & ~umask)
        _fsync_directory(root)


def _fsync(path: str | Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: str | Path) -> None:
    """fsync a directory, so that the names in it survive a power loss; Windows has no such call (no O_DIRECTORY)."""
    if hasattr(os, "O_DIRECTORY"):
        _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _swap_in(staging: Path, path: Path) -> None:
    """Put `staging` at `path`; an existing `path` is swapped out atomically, or moved aside (the overwrite
    window recover() closes), then removed."""
    if not os.path.lexists(path):
        os.rename(staging, path)
    elif _exchange(staging, path):
        _remove(staging)  # now the old output
    else:
        old = path.with_name(f".{path.name}.{OLD}-{os.getpid()}-{os.urandom(4).hex()}")
        os.rename(path, old)
        os.rename(staging, path)
        _remove(old)
    _fsync_directory(path.parent)


def publish(out: str | os.PathLike, write: Callable[[Path], None], *, protect: Iterable[str | os.PathLike] = (),
            overwrite: bool = False, mode: int = 0o755, kind_check: KindCheck | None = None) -> Path:
    """Publish the directory `write(staging)` fills at `out` (see the module docstring); returns its path.

    Raises UnsafeOut (check_out), DiskFull when the disk fills, or whatever `write` raises; the staging
    directory is gone and `out` untouched in each case."""
    protect = list(protect)
    path = _absolute(out)
    _refuse_unsafe(path, protect)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    path = check_out(path, protect=protect, overwrite=overwrite, kind_check=kind_check)
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.{STAGING}-{os.getpid()}-", dir=path.parent))
        write(staging)
        _seal(staging, mode)
        _swap_in(staging, path)
    except BaseException as e:
        if staging is not None and os.path.lexists(staging):
            _remove(staging)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left on the device of {path.parent} while writing {path.name} (nothing was "
                           "left behind); free some space or choose an --out on another disk") from None
        raise
    return path
