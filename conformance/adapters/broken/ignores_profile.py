#!/usr/bin/env python3
"""Broken on purpose: validates everything under compat, whatever profile is asked for."""

from _base import handle, serve


def compat_only(message: dict) -> dict:
    return handle({**message, "profile": "compat"} if "profile" in message else message)


if __name__ == "__main__":
    serve(handler=compat_only)
