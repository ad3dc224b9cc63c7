"""The cyclic garbage collector and bulk work.

Folding or auditing events allocates millions of small, acyclic objects (envelopes, rows,
observations) that live for a batch or for the whole check. CPython's collector walks the
survivors again on each full pass, and such work triggers one every few thousand events:
measured here, a fifth of the ledger fold's time and a third of an audit of a million
measurements. Reference counting still frees everything; only cycles wait.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def settle() -> None:
    """Take what the process has loaded so far (modules, pydantic schemas, settings: it lives
    as long as the process) out of the collector's passes. Call once, after start-up."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def paused_collector() -> Iterator[None]:
    """No cyclic collection while bulk, acyclic data is built (bounded work: an audit)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
