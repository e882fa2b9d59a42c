"""The specfmt conformance runner: certifies an implementation through the adapter protocol.

It reads the suite (conformance/manifest.json and the cases it lists), speaks the JSON-lines
protocol of conformance/PROTOCOL.md with an adapter, grades every answer itself and writes
report.json, report.md and junit.xml. Standard library only: third parties run it without the
specfmt runtime (jsonschema is used only by --validate-protocol).
"""

RUNNER_VERSION = "1.3.1"
PROTOCOL_VERSION = 1
LEVELS = ("schema", "checkpoint", "numerics")
STATUSES = ("pass", "fail", "skip", "xfail", "xpass", "error", "crash", "not-applicable")
FAILING = frozenset({"fail", "xpass", "error", "crash"})
