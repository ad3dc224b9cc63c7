"""The cyclic garbage collector and bulk work.

Folding or auditing events allocates millions of small, acyclic objects (envelopes, rows,
observations) that live for a batch or for the whole check. CPython's collector walks the
survivors again on each full pass, and such work triggers one every few thousand events
(docs/benchmarks.md has what it costs). Reference counting still frees everything; only
cycles wait. Only the processes that fold (the ledger, replay) and audit use this.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 50_000
"""Allocations between young collections (CPython's default is 700). A consumer keeps a
batch of thousands of events alive while it applies it; at 700, each young pass finds them,
promotes them, and soon a full pass walks them all again. At this size the fold's
allocations and frees nearly balance out between passes. Objects in cycles wait longer."""


def freeze_start_up() -> None:
    """Take what start-up built (modules, schemas, the app) out of every collection from now
    on, leaving the thresholds as they are: for a service whose requests make many short-lived
    objects (ingest), where walking start-up's objects was much of each request's CPU."""
    gc.collect()
    gc.freeze()


def settle() -> None:
    """Take what the process has loaded so far (modules, pydantic schemas, settings: it lives
    as long as the process) out of the collector's passes, and collect the young generation
    less often. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)


@contextlib.contextmanager
def paused_collector(*, kept_till_exit: bool = False) -> Iterator[None]:
    """No cyclic collection while bulk, acyclic data is built and kept (bounded work: an
    audit reads a million envelopes). The first pass afterwards walks the survivors once
    (about a second for a million measurements); collecting meanwhile would walk them again
    and again.

    `kept_till_exit`, for a one-shot command whose data lives till the process ends: take
    everything alive out of the collector's passes for good (`gc.freeze`) instead, so not
    even that one pass is made. Not for a server: garbage cycles alive at that moment would
    never be collected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if kept_till_exit:
            gc.freeze()
        if enabled:
            gc.enable()
