"""JSON in and out, with orjson: UTC timestamps, decimals as strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON; `Decimal` becomes a decimal string."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
