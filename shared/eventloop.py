"""The event loop every slapay process runs on: uvloop where it is installed (a dependency
on Linux and macOS), else asyncio's own.

The services get it from uvicorn, whose `loop="auto"` picks uvloop when it can be imported;
`run` does the same for the commands that are not servers (`slapay audit verify`, `slapay
replay`) and for the bench, which so measures the loop the services run on. uvloop's
transports and scheduling are C, a little cheaper per event (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
