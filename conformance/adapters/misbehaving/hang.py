"""Misbehaving adapter: never answers the triggered case (the runner records error, reason timeout)."""

import sys
import time

from _common import serve


def hang(message: dict) -> None:
    print(f"hang.py: hanging on purpose at seq {message['seq']}", file=sys.stderr, flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    serve("misbehaving-hang", hang)
