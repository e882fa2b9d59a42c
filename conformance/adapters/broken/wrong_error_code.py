#!/usr/bin/env python3
"""Broken on purpose: reports `config.required` as the generic `config.schema`."""

from _base import serve


def generic_code(message: dict, response: dict) -> dict:
    if "findings" in response:
        response["findings"] = [{**f, "code": "config.schema" if f["code"] == "config.required" else f["code"]}
                                for f in response["findings"]]
    return response


if __name__ == "__main__":
    serve(generic_code)
