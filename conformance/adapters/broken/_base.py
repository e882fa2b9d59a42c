"""Shared plumbing of the deliberately broken adapters: the reference adapter plus one defect each."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reference"))

from adapter import HANDLES, OPERATIONS, handle, serve, verdict, with_operations  # noqa: E402

__all__ = ["HANDLES", "OPERATIONS", "handle", "serve", "verdict", "with_operations"]
