"""Validators used by the generated models (models.py): JSON Schema semantics in pydantic.

JSON Schema counts 5.0 as an integer and never counts true as one; `const` and `enum` compare with
JSON equality; a dispatch picks a class by one key's value.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def member(*values: Any):
    def check(value: Any) -> Any:
        if not any(json_equal(value, v) for v in values):
            raise ValueError(f"expected one of {list(values)!r}")
        return value
    return BeforeValidator(check)


def integral(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def forbidden(value: Any) -> Any:
    raise ValueError("forbidden under this profile")


def tag(key: str, tags: tuple[str, ...], absent: str | None = None):
    def pick(value: Any) -> str | None:
        found = value.get(key, ...) if isinstance(value, dict) else getattr(value, key, ...)
        if found is ...:
            return absent
        return found if isinstance(found, str) and found in tags else None
    return pick


Forbidden = Annotated[Any, BeforeValidator(forbidden)]


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())
