"""Shared plumbing of the deliberately broken adapters: the reference adapter plus one defect each."""

from specfmt.conformance_adapter import HANDLES, OPERATIONS, handle, serve, verdict, with_operations

__all__ = ["HANDLES", "OPERATIONS", "handle", "serve", "verdict", "with_operations"]
