#!/usr/bin/env python3
"""Broken on purpose: a checkpoint's tensor values are scanned whether or not the runner asks, where GEN-5 performs
the value checks only when asked (scan_values)."""

from _base import handle, serve


def scanning(message: dict) -> dict:
    return handle({**message, "scan_values": True} if message.get("checkpoint_dir") else message)


if __name__ == "__main__":
    serve(handler=scanning)
