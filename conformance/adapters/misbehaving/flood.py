"""Misbehaving adapter: answers a triggered validate with N unexpected findings (argv[2], default 10^6), as an
implementation that reports every byte of a file would. The runner must cap what it reports and stay fast."""

import sys

from _common import serve

COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000


def flood(message: dict) -> None:
    # written by hand rather than by json.dumps of a list: the adapter's own time is not what is measured
    row = '{"code": "header.offsets", "pointer": "/t%d/data_offsets", "severity": "error", "file": "model.safetensors"}'
    body = ", ".join(row % i for i in range(COUNT))
    sys.stdout.write(f'{{"seq": {message["seq"]}, "findings": [{body}]}}\n')
    sys.stdout.flush()


if __name__ == "__main__":
    serve("misbehaving-flood", flood)
