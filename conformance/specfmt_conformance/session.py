"""The adapter across a whole run: restarted after a crash or a timeout, one loaded model kept.

The runner never sends what the adapter did not declare: `not_applicable` names the reason a case
falls outside the `supports` of the first hello.
"""

from __future__ import annotations

from pathlib import Path

from specfmt_conformance.adapter import Adapter, AdapterCrash, AdapterError, AdapterTimeout, Checker, ProtocolError
from specfmt_conformance.suite import Case

LOAD_OPTIONS = {"dtype": "float32", "device": "cpu"}


class Session:
    """Starts the adapter, restarts it before a case when it is gone, and tracks the loaded handle."""

    def __init__(self, command: list[str], timeout: float, suite_version: str, checker: Checker | None = None):
        self.command, self.timeout, self.checker = command, timeout, checker
        self.suite_version = suite_version
        self.adapter: Adapter | None = None
        self.hello: dict | None = None
        self.restarts = 0
        self._broken: str | None = None
        self._loaded: tuple[tuple[Path | None, Path | None], str] | None = None

    def open(self) -> dict:
        """Start the adapter and shake hands; the hello answer fixes `supports` for the run."""
        self.adapter = Adapter(self.command, self.timeout, self.checker)
        try:
            self.hello = self.adapter.hello(self.suite_version)
        except (AdapterCrash, AdapterTimeout, ProtocolError):
            self.adapter.kill()
            raise
        return self.hello

    @property
    def supports(self) -> dict:
        return self.hello["supports"]

    def ensure(self) -> None:
        """Restart the adapter if a crash or a timeout killed it; a failed restart ends the session."""
        if self._broken:
            raise AdapterCrash(self._broken)
        if self.adapter is not None and self.adapter.alive:
            return
        self._loaded = None
        self.restarts += 1
        try:
            self.adapter = Adapter(self.command, self.timeout, self.checker)
            self.adapter.hello(self.suite_version)
        except (AdapterCrash, AdapterTimeout, ProtocolError) as e:
            if self.adapter is not None:
                self.adapter.kill()
            self._broken = f"adapter could not be restarted: {e}"
            raise AdapterCrash(self._broken) from e

    def request(self, cmd: str, **fields) -> dict:
        return self.adapter.request(cmd, **fields)

    def take_stderr(self) -> str:
        return self.adapter.take_stderr() if self.adapter is not None else ""

    def load(self, checkpoint: Path | None, verifier: Path | None) -> str:
        """A handle for the pair, reusing the loaded one when it is the same pair; None is sent as null
        (a verification rule needs no model)."""
        key = (checkpoint, verifier)
        if self._loaded and self._loaded[0] == key:
            return self._loaded[1]
        self.unload()
        answer = self.request("load", checkpoint_dir=checkpoint and str(checkpoint),
                              verifier_dir=verifier and str(verifier),
                              options=dict(LOAD_OPTIONS))
        handle = answer.get("handle")
        if not isinstance(handle, str):
            raise ProtocolError("load answer has no string handle")
        self._loaded = (key, handle)
        return handle

    def unload(self) -> None:
        """Unload the loaded model, if any (an error answer is raised as AdapterError)."""
        if self._loaded is None:
            return
        handle, self._loaded = self._loaded[1], None
        answer = self.request("unload", handle=handle)
        if answer.get("ok") is not True:
            raise ProtocolError("unload answer is not ok")

    def close(self) -> None:
        """Unload and stop; errors at this point no longer change any result."""
        if self.adapter is None:
            return
        try:
            if self.adapter.alive and not self._broken:
                self.unload()
        except (AdapterCrash, AdapterError, AdapterTimeout, ProtocolError):
            pass
        self.adapter.stop()

    def not_applicable(self, case: Case) -> str | None:
        """Why the case is outside what the adapter declared, or None when it applies."""
        supports = self.supports
        if case.level not in supports.get("levels", []):
            return f"the adapter does not declare the {case.level} level"
        if case.level == "numerics":
            operation = case.doc["operation"]
            if operation not in supports.get("operations", []):
                return f"the adapter does not declare the {operation} operation"
        elif case.profile not in supports.get("profiles", []):
            return f"the adapter does not declare the {case.profile} profile"
        if "algorithms" in supports and case.algorithm and case.algorithm not in supports["algorithms"]:
            return f"the adapter does not declare the {case.algorithm} algorithm"
        return None
