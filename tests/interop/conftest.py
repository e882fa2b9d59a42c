"""The interop tier's summary: after the vLLM tests, one row per draft."""

import sys


def pytest_terminal_summary(terminalreporter):
    table = getattr(sys.modules.get("test_vllm"), "TABLE", None)
    if not table:
        return
    columns = ["engine (auto)", "engine (spec)", "outputs equal", "proposals equal", "acceptance equal"]
    terminalreporter.section("vLLM 0.32 serving specfmt checkpoints")
    rows = [["draft", *columns]] + [[name, *(str(cells.get(c, "-")) for c in columns)] for name, cells in table.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        terminalreporter.write_line("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
