#!/usr/bin/env python3
"""Broken on purpose: reports errors only, dropping every hazard warning."""

from _base import serve


def errors_only(message: dict, response: dict) -> dict:
    if "findings" in response:
        response["findings"] = [f for f in response["findings"] if f["severity"] == "error"]
    return response


if __name__ == "__main__":
    serve(errors_only)
