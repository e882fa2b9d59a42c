"""Misbehaving adapter: exits in the middle of the triggered case (the runner records crash)."""

import sys

from _common import serve


def crash(message: dict) -> None:
    print(f"crash.py: exiting on purpose at seq {message['seq']}", file=sys.stderr, flush=True)
    sys.exit(3)


if __name__ == "__main__":
    serve("misbehaving-crash", crash)
