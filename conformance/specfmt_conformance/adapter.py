"""One adapter process and the JSON-lines protocol spoken with it (conformance/PROTOCOL.md).

Two reader threads drain the adapter's stdout (protocol lines) and stderr (logs, kept per case).
Every command has a deadline; past it the adapter is killed. A process that exits, or a stdout line
that is not a JSON object with the right seq, is a crash: the adapter is killed and must be
restarted before the next case.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from specfmt_conformance import PROTOCOL_VERSION

STDERR_KEEP = 64 * 1024  # bytes of stderr kept per case; older output is dropped
Checker = Callable[[str, str, dict], list[str]]  # (cmd, "request" | "response", message) -> problems


class AdapterCrash(Exception):
    """The adapter exited or wrote a line that is not a protocol message."""


class AdapterTimeout(Exception):
    """The adapter did not answer within the per-command timeout; it has been killed."""


class AdapterError(Exception):
    """The adapter answered {"seq": N, "error": {"message": ..., "code": ...}}; `code` is the refusal code it
    names (PROTOCOL.md 3.4), or None."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class ProtocolError(Exception):
    """A well-formed JSON answer that breaks the protocol (a missing field, a schema violation)."""


def _pump_lines(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(None)  # end of stdout: the adapter exited or closed it


class Adapter:
    """A started adapter process; `request` sends one command and returns its answer."""

    def __init__(self, command: list[str], timeout: float, checker: Checker | None = None):
        self.command, self.timeout, self.checker = command, timeout, checker
        self._seq = 0
        self._stderr = bytearray()
        self._lock = threading.Lock()
        self._lines: queue.Queue = queue.Queue()
        try:
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise AdapterCrash(f"cannot start the adapter {command[0]!r}: {e.strerror}") from e
        self._threads = [threading.Thread(target=_pump_lines, args=(self._proc.stdout, self._lines), daemon=True),
                         threading.Thread(target=self._pump_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _pump_stderr(self) -> None:
        for chunk in iter(lambda: self._proc.stderr.read1(4096), b""):
            with self._lock:
                self._stderr += chunk
                del self._stderr[:-STDERR_KEEP]

    def take_stderr(self) -> str:
        """The stderr written since the last call."""
        with self._lock:
            text = self._stderr.decode("utf-8", "replace")
            self._stderr.clear()
        return text

    def hello(self, suite_version: str) -> dict:
        """The handshake: the adapter's implementation metadata and its declared `supports`."""
        answer = self._call({"cmd": "hello", "protocol": PROTOCOL_VERSION, "suite_version": suite_version})
        if "error" in answer:
            self.kill()
            raise ProtocolError(f"hello answered an error: {json.dumps(answer['error'])}")
        if answer.get("protocol") != PROTOCOL_VERSION:
            self.kill()
            raise ProtocolError(f"adapter speaks protocol {answer.get('protocol')!r}, the runner {PROTOCOL_VERSION}")
        supports, impl = answer.get("supports"), answer.get("implementation")
        if not isinstance(impl, dict) or not isinstance(supports, dict) or not all(
                isinstance(supports.get(key, []), list) for key in ("levels", "profiles", "operations", "algorithms")):
            self.kill()
            raise ProtocolError("hello answer needs an implementation object and lists in supports")
        return answer

    def request(self, cmd: str, **fields) -> dict:
        """Send `cmd` with a fresh seq; the answer, unless it is an error (raised as AdapterError)."""
        self._seq += 1
        answer = self._call({"cmd": cmd, "seq": self._seq, **fields})
        if "error" in answer:
            error = answer["error"]
            message = error.get("message") if isinstance(error, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            raise AdapterError(message if isinstance(message, str) else json.dumps(error),
                               code if isinstance(code, str) else None)
        return answer

    def _call(self, message: dict) -> dict:
        self._check(message, "request")
        try:
            self._proc.stdin.write(json.dumps(message).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError as e:
            self.kill()
            raise AdapterCrash(f"adapter closed its stdin (exit code {self._proc.returncode})") from e
        answer = self._receive(message.get("seq"))
        self._check(answer, "response", message["cmd"])
        return answer

    def _check(self, message: dict, direction: str, cmd: str | None = None) -> None:
        problems = self.checker(cmd or message["cmd"], direction, message) if self.checker else []
        if problems and direction == "request":
            raise RuntimeError(f"runner bug, invalid {message['cmd']} request: {problems}")
        if problems:
            raise ProtocolError(f"{cmd} answer violates the protocol schema: " + "; ".join(problems))

    def _receive(self, seq: int | None) -> dict:
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            self.kill()
            raise AdapterTimeout(f"no answer within {self.timeout:g} s") from None
        if line is None:
            self.kill()
            raise AdapterCrash(f"adapter exited (exit code {self._proc.returncode})")
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.kill()
            raise AdapterCrash(f"adapter wrote a line that is not a JSON object: {line[:200]!r}")
        if seq is not None and answer.get("seq") != seq:
            self.kill()
            raise AdapterCrash(f"answer out of sequence: expected seq {seq}, found {answer.get('seq')!r}")
        return answer

    def stop(self) -> None:
        """Send stop and wait for the exit; kill the adapter if it lingers."""
        if self.alive:
            try:
                self._proc.stdin.write(b'{"cmd": "stop"}\n')
                self._proc.stdin.close()
                self._proc.wait(timeout=self.timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """Kill the adapter's process group and collect what it wrote to stderr."""
        if self.alive:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (AttributeError, OSError):
                self._proc.kill()
        self._proc.wait()
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        # A reader still blocked (a grandchild holding the pipe) keeps its stream; closing it would block.
        streams = [self._proc.stdin]
        if not any(thread.is_alive() for thread in self._threads):
            streams += [self._proc.stdout, self._proc.stderr]
        for stream in streams:
            try:
                stream.close()
            except OSError:
                pass
