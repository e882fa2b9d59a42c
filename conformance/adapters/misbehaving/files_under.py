"""Misbehaving adapter: answers every checkpoint validate with one header.offsets finding at
/t/data_offsets filed under the file argv[1] names, or with no file at all when argv[1] is absent.
The runner grades `file` at the checkpoint level, so the same finding under another file fails."""

import json
import sys

from _common import hello, reply

FILE = sys.argv[1] if len(sys.argv) > 1 else None


def finding() -> dict:
    found = {"code": "header.offsets", "pointer": "/t/data_offsets", "severity": "error"}
    return found if FILE is None else {**found, "file": FILE}


if __name__ == "__main__":
    for line in sys.stdin:
        message = json.loads(line)
        if message["cmd"] == "hello":
            reply(hello("misbehaving-files-under", ["checkpoint"], []))
        elif message["cmd"] == "stop":
            break
        elif message["cmd"] == "validate":
            reply({"seq": message["seq"], "findings": [finding()]})
        else:
            reply({"seq": message.get("seq"), "error": {"message": f"no {message['cmd']}"}})
