#!/usr/bin/env python3
"""Broken on purpose: a compat config must declare format version 1.0 exactly, where CFG-4 and VER-3 make a v1.0
reader accept a later 1.x minor version (and ignore the fields it adds)."""

import re

from _base import serve


def only_1_0(message: dict, response: dict) -> dict:
    doc = message.get("document")
    version = doc.get("speculators_format_version") if isinstance(doc, dict) else None
    later = isinstance(version, str) and re.fullmatch(r"1\.[0-9]+", version) is not None and version != "1.0"
    if later and message.get("profile") == "compat" and "findings" in response:
        response["findings"].append({"code": "config.enum", "pointer": "/speculators_format_version",
                                     "severity": "error"})
    return response


if __name__ == "__main__":
    serve(only_1_0)
