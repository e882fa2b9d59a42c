"""kill -9 harness for the crash tests of the writers (save, export, upgrade here; datagen and train elsewhere).

A command runs as `python tests/killing.py HOOKS ARGV...`: this file installs the hooks in the child, then runs
`specfmt.cli.main(ARGV)`. The hooks widen the windows a kill should land in: each os.fsync, os.replace and
os.rename sleeps `slow` seconds (before and after, so the overwrite window between moving the old output aside and
renaming the new one in is wide), and `fallback` makes publish move the old output aside instead of swapping
atomically (the path where renameat2 is missing). The child writes one byte on a pipe at its first
tempfile.mkdtemp (publish creating its staging directory), so kills are timed from there, not from start-up, and
b"d" when the command returns.
`hold` (a substring) stops the child for good right after an os.rename whose destination contains it, after
writing b"h" on the pipe: kill_held kills it there, inside the window that rename opens (".specfmt-old-": the old
output moved aside, the new one not yet in place).

    landed = kill_series(argv, cwd, check, kills=20, slow=0.02)   # check() asserts on the target after each kill
    assert kill_held(argv, cwd, ".specfmt-old-", fallback=True)
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REFERENCE = HERE.parent.parent / "reference"


def command(argv: list[str], marker_fd: int, slow: float = 0.0, fallback: bool = False, hold: str = "") -> list[str]:
    """The child's command line: the hooks as JSON, then the specfmt arguments."""
    hooks = {"marker_fd": marker_fd, "slow": slow, "fallback": fallback, "hold": hold}
    return [sys.executable, str(HERE), json.dumps(hooks), *argv]


def start(argv: list[str], cwd: Path, slow: float = 0.0, fallback: bool = False,
          hold: str = "") -> tuple[subprocess.Popen, int]:
    """The child, started, and the read end of its marker pipe."""
    read, write = os.pipe()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REFERENCE), os.environ.get("PYTHONPATH")])))
    child = subprocess.Popen(command(argv, write, slow, fallback, hold), cwd=cwd, env=env, pass_fds=(write,),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write)
    return child, read


def wait_marker(read: int, timeout: float = 120.0, expect: bytes = b"s") -> bool:
    """True once the child wrote `expect` (b"s": it reached its first mkdtemp; b"h": it holds after the rename);
    False when it exited (or timed out) before."""
    ready, _, _ = select.select([read], [], [], timeout)
    return bool(ready) and os.read(read, 1) == expect


def run(argv: list[str], cwd: Path, slow: float = 0.0, fallback: bool = False) -> tuple[int, str, float]:
    """Run to the end: exit status, stderr, and the seconds from the marker to the command's return (b"d", written
    before the interpreter's slow exit, where a kill tells nothing)."""
    child, read = start(argv, cwd, slow, fallback)
    try:
        wait_marker(read)
        began = time.monotonic()
        wait_marker(read, timeout=300, expect=b"d")
        span = time.monotonic() - began
        _, err = child.communicate(timeout=300)
        return child.returncode, err.decode(errors="replace"), span
    finally:
        os.close(read)


def kill_at(argv: list[str], cwd: Path, delay: float, slow: float = 0.0, fallback: bool = False) -> bool:
    """Start, wait for the marker, sleep `delay`, kill -9. True when the kill landed (the child still ran)."""
    child, read = start(argv, cwd, slow, fallback)
    try:
        if wait_marker(read):
            time.sleep(delay)
        landed = child.poll() is None
        if landed:
            child.send_signal(signal.SIGKILL)
        child.communicate(timeout=300)
        return landed
    finally:
        os.close(read)


def kill_held(argv: list[str], cwd: Path, hold: str, fallback: bool = False) -> bool:
    """Start, wait until the child holds after its rename to a name containing `hold`, kill -9 it there. True when
    it was held (False: it exited without such a rename)."""
    child, read = start(argv, cwd, fallback=fallback, hold=hold)
    try:
        held = wait_marker(read) and wait_marker(read, expect=b"h")
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=300)
        return held
    finally:
        os.close(read)


def kill_series(argv: list[str], cwd: Path, check, kills: int = 20, slow: float = 0.02, fallback: bool = False,
                seed: int = 0) -> list[float]:
    """`kills` kill -9s at delays drawn uniformly over one measured run's writing span; `check()` runs after each
    (it asserts on the target). Returns the delays whose kill landed."""
    code, err, span = run(argv, cwd, slow, fallback)
    assert code == 0, err
    check()
    rng = random.Random(seed)
    landed = []
    for _ in range(kills):
        delay = rng.uniform(0, span)
        if kill_at(argv, cwd, delay, slow, fallback):
            landed.append(delay)
        check()
    return landed


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` by its relative name, with its bytes ({} when `path` does not exist)."""
    if not path.is_dir():
        return {}
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def leftovers(path: Path) -> list[str]:
    """Names beside `path` that publish owns (staging or moved-aside old outputs)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.specfmt-"))


def _install(hooks: dict) -> None:
    import tempfile

    marker, slow = hooks["marker_fd"], hooks["slow"]
    mkdtemp, sent = tempfile.mkdtemp, []

    def marked_mkdtemp(*args, **kwargs):
        if not sent:
            os.write(marker, b"s")
            sent.append(True)
        return mkdtemp(*args, **kwargs)

    def slowed(call):
        def wrapper(*args, **kwargs):
            time.sleep(slow)
            result = call(*args, **kwargs)
            time.sleep(slow)
            return result
        return wrapper

    def holding(rename):
        def wrapper(src, dst, *args, **kwargs):
            result = rename(src, dst, *args, **kwargs)
            if hooks["hold"] in os.fsdecode(dst):
                os.write(marker, b"h")
                time.sleep(600)
            return result
        return wrapper

    tempfile.mkdtemp = marked_mkdtemp
    if slow:
        os.fsync, os.rename, os.replace = slowed(os.fsync), slowed(os.rename), slowed(os.replace)
    if hooks["hold"]:
        os.rename, os.replace = holding(os.rename), holding(os.replace)
    if hooks["fallback"]:
        from specfmt import publish

        publish._exchange = lambda a, b: False


if __name__ == "__main__":
    _install(json.loads(sys.argv[1]))
    from specfmt.cli import main

    status = main(sys.argv[2:])
    os.write(json.loads(sys.argv[1])["marker_fd"], b"d")
    sys.exit(status)
