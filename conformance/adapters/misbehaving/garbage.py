"""Misbehaving adapter: prints a line that is not JSON instead of an answer (the runner records crash)."""

import sys

from _common import serve


def garbage(message: dict) -> None:
    sys.stdout.write("Traceback (most recent call last): this is not a protocol line\n")
    sys.stdout.flush()


if __name__ == "__main__":
    serve("misbehaving-garbage", garbage)
