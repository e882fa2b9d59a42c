"""Generators of the conformance suite's schema- and checkpoint-level cases (see conformance/README.md).

Run from the repository root: `python -m conformance.generators` rewrites the cases and
manifest.json; `python -m conformance.generators --check` fails when they are stale.
"""
