#!/usr/bin/env python3
"""Broken on purpose: every document and checkpoint is valid, with no findings."""

from _base import serve


def no_findings(message: dict, response: dict) -> dict:
    return {**response, "findings": []} if "findings" in response else response


if __name__ == "__main__":
    serve(no_findings)
