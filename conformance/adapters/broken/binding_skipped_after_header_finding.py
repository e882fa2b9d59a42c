#!/usr/bin/env python3
"""Broken on purpose: a header with any finding stops binding, so no layout finding is reported, where LAY-3 binds the
well-formed entries of every header that parsed (the Node adapter did so before suite 4.0.0)."""

from _base import serve


def unbound(message: dict, response: dict) -> dict:
    findings = response.get("findings", [])
    if any(f["code"].startswith("header.") for f in findings):
        response["findings"] = [f for f in findings if not f["code"].startswith("layout.")]
    return response


if __name__ == "__main__":
    serve(unbound)
