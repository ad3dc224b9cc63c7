"""Retrying work that an outage interrupts, and telling an outage from bad data.

An outage (the database or the broker unreachable, a deadlock, a busy SQLite file) passes by
itself: the work is retried until it ends. Anything else that fails while both answer is
blamed on what the work was given (a poison record): retrying cannot help, and the caller
decides how often to try before setting it aside.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from shared.bus import BusUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
Probe = Callable[[], Awaitable[None]]
"""Raises when a dependency (database, bus) does not answer."""

PROBE_TIMEOUT_S = 5.0
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P03", "53300"})
"""Serialization failure, deadlock, lock not available, admin shutdown, cannot connect now,
too many connections: they pass without any change to the data."""


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` by its kind says a dependency is unreachable or busy (not the data)."""
    if isinstance(exc, (OSError, TimeoutError, BusUnavailable, ConnectionError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        if _sqlstate(exc) in _TRANSIENT_SQLSTATES:
            return True
        text = str(exc.orig).lower()
        return "database is locked" in text or ("connection" in text and "closed" in text)
    return False


def _sqlstate(exc: DBAPIError) -> str | None:
    cause = exc.orig
    for candidate in (cause, getattr(cause, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


async def blames_the_data(exc: BaseException, probe: Probe | None) -> bool:
    """True when `exc` is not an outage and every dependency answers `probe`: what failed
    must then be the data the work was given."""
    if is_outage(exc):
        return False
    if probe is None:
        return True
    try:
        await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception:
        return False
    return True


async def retrying(
    step: Callable[[], Awaitable[T]], *, what: str, max_backoff_s: float = 10.0
) -> T:
    """`step()`, retried with exponential back-off (0.1 s doubling up to `max_backoff_s`)
    until it succeeds; each failure is logged with `what` failed."""
    delay = 0.1
    while True:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %.1fs", what, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    *,
    what: str,
    wait_first: bool = False,
) -> None:
    """Run `step()` every `interval_s` seconds until cancelled (`wait_first`: the first
    round after one interval); a failure is logged and the next round comes as usual."""
    if wait_first:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; will retry", what)
        await asyncio.sleep(interval_s)
