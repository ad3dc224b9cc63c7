"""Verifying a final statement off the request path.

Each verification runs in a process of its own, forked from a server process that has the
audit's modules loaded (multiprocessing's forkserver), with its own bus and database
connections built from the settings; when it ends, every byte it read goes back to the
system. A replica runs at most `verify_concurrency` at once and refuses more with 429.

A verified final statement's result is kept by the contract's chain head on the bus, the hash
of its last journal entry. The bus is append-only, so while the head stays, what was read from
it and recomputed still holds; asking again costs a read of the contract's journal from the
bus, one query, and the comparison of the entries this service serves with that chain (the
served copy is what could change behind the service's back). The head is the bus's, never the
served copy's: a read model that lost its last entries shows an older head, whose result
must not answer for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Any

from aiokafka.errors import KafkaError
from opentelemetry.metrics import Meter, Observation
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.statements import store
from shared import audit, db, eventloop, heap
from shared.audit.stored import stored_differences
from shared.bus import Bus, BusUnavailable
from shared.bus.factory import create_bus
from shared.core.journal import JournalEntry
from shared.settings import Settings

log = logging.getLogger(__name__)
RETRY_AFTER_S = 2
NICENESS = 19
"""The verification processes' CPU priority, the lowest: beside nice-0 requests on a core, a
process at 10 still holds about a tenth of it, which shows in the requests' tail latency
(docs/benchmarks.md); at 19 about one and a half percent."""
CACHED_RESULTS = 256
SERVED = "statements read model"


@dataclass(frozen=True)
class Checked:
    """What a verification found, as it comes back from its process."""

    differences: list[dict[str, Any]]
    entries_checked: int
    events_on_bus: int
    chain: list[JournalEntry] = field(default_factory=list)
    """The contract's journal entries as the bus holds them: what this result covers."""

    @property
    def head(self) -> str | None:
        return self.chain[-1].hash if self.chain else None


@dataclass(frozen=True)
class Refused:
    """Why a verification gave no result: an HTTP status, title and detail."""

    status: int
    title: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


Outcome = Checked | Refused
Job = Callable[[Settings, str, str], Outcome]


def run_verification(settings: Settings, contract_id: str, period: str) -> Outcome:
    """The whole check of `period`, in the verification's process."""
    return eventloop.run(_verify(settings, contract_id, period))


async def _verify(settings: Settings, contract_id: str, period: str) -> Outcome:
    bus = create_bus(settings)
    engine = db.create_engine(settings.database_url_for("statements"))
    try:
        await bus.start()
        with heap.paused_collector(kept_till_exit=True):  # the process ends with the check
            history = await audit.read_history(bus, contract_id)
        if not history.terms:
            return Refused(404, "Not found", f"no contract {contract_id!r}")
        reason = audit.nothing_final(history, period)
        if reason is not None:
            return Refused(409, "Nothing final to verify", reason)
        history, served = await audit.in_step(
            bus, history, lambda: store.entry_rows(engine, contract_id)
        )
    except UNREADABLE as exc:
        return _unavailable(exc)
    finally:
        await bus.stop()
        await engine.dispose()
    differences = audit.verify(history, period, served, store=SERVED)
    return Checked(differences, len(served), len(history.measurements), history.entries)


UNREADABLE = (BusUnavailable, OSError, SQLAlchemyError, KafkaError)
"""What reading the bus or the database raises when either is away: a 503, not a finding."""


def _unavailable(exc: BaseException) -> Refused:
    detail = f"could not read the bus or the database: {type(exc).__name__}"
    return Refused(503, "Unavailable", detail, {"Retry-After": str(RETRY_AFTER_S)})


class Verifications:
    """This replica's verifications: the bound, the cache and the processes."""

    def __init__(self, settings: Settings, meter: Meter, job: Job = run_verification) -> None:
        self._settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
        self._job = job
        self.limit = settings.verify_concurrency
        self.running = 0
        self._cache: OrderedDict[tuple[str, str, str], Checked] = OrderedDict()
        self._children: set[_Child] = set()
        self._threads: ThreadPoolExecutor | None = None
        self._counted = meter.create_counter(
            "slapay.verifications",
            unit="{verification}",
            description="Statement verifications, by outcome: computed (in a process of its "
            "own), cached (a verified chain head asked again), refused (too many at once).",
        )
        meter.create_observable_gauge(
            "slapay.verifications.running",
            callbacks=[lambda _: [Observation(self.running)]],
            unit="{verification}",
            description="Verifications running in their own processes now.",
        )

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        """For the service's lifetime; on the way out, every running check is stopped."""
        self._threads = ThreadPoolExecutor(self.limit, thread_name_prefix="verification")
        try:
            yield
        finally:
            for child in list(self._children):
                child.stop()
            threads, self._threads = self._threads, None
            await asyncio.to_thread(threads.shutdown)

    async def verify(self, bus: Bus, engine: AsyncEngine, contract_id: str, period: str) -> Outcome:
        """The cached result for the chain the bus holds now, else a fresh check in a process
        of its own, or 429 when `limit` are running."""
        try:
            journal = await audit.read_journal(bus, contract_id)
            key = (contract_id, period, _chain_head(journal.entries))
            cached = self._cache.get(key)
            if cached is not None:
                published, rows = await audit.in_step(
                    bus,
                    audit.History(contract_id, journal=journal),
                    lambda: store.entry_rows(engine, contract_id),
                )
                if _chain_head(published.entries) != cached.head:
                    cached = None  # the chain moved on while the read model caught up
        except UNREADABLE as exc:
            return _unavailable(exc)
        if cached is not None:
            self._cache.move_to_end(key)
            self._counted.add(1, {"outcome": "cached"})
            served = stored_differences(published.entries, rows, SERVED)
            return replace(cached, differences=served, entries_checked=len(rows))
        if self.running >= self.limit:
            self._counted.add(1, {"outcome": "refused"})
            detail = f"{self.running} verifications are running, the most this replica runs"
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            return Refused(429, "Too many verifications", detail, headers)
        self.running += 1
        try:
            outcome = await self._in_child(contract_id, period)
        finally:
            self.running -= 1
        self._counted.add(1, {"outcome": "computed"})
        if isinstance(outcome, Checked) and not outcome.differences and outcome.head:
            self._remember((contract_id, period, outcome.head), outcome)
        return outcome

    def _remember(self, key: tuple[str, str, str], checked: Checked) -> None:
        """Only what verified: a difference may be passing (a read model a moment behind the
        bus), and is checked again on the next call."""
        self._cache[key] = checked
        while len(self._cache) > CACHED_RESULTS:
            self._cache.popitem(last=False)

    async def _in_child(self, contract_id: str, period: str) -> Outcome:
        """Run the job in its own process and wait for it off the event loop; a cancelled
        request stops the process, and the slot is free only once the process has ended."""
        if self._threads is None:
            raise RuntimeError("Verifications used outside opened()")
        child = _Child(self._job, (self._settings, contract_id, period))
        self._children.add(child)
        work = asyncio.get_running_loop().run_in_executor(self._threads, child.run)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            child.stop()
            await asyncio.wait([work])
            raise
        finally:
            self._children.discard(child)


class _Child:
    """One verification's process, started and awaited from a worker thread."""

    def __init__(self, job: Job, args: tuple[Settings, str, str]) -> None:
        self._job, self._args = job, args
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stopped = threading.Event()

    def run(self) -> Outcome:
        context = _context()
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_serve, args=(sender, self._job, *self._args), daemon=True, name="verify"
        )
        with receiver:
            process.start()
            sender.close()
            self._process = process
            if self._stopped.is_set():  # stop() came while it was starting
                process.terminate()
            try:
                outcome = receiver.recv()
            except EOFError:
                outcome = None
            process.join()
        if isinstance(outcome, Checked | Refused):
            return outcome
        if isinstance(outcome, str):  # the job raised: a bug, not the request's fault
            raise RuntimeError(f"the verification failed in its process:\n{outcome}")
        detail = f"its process ended with exit code {process.exitcode}"
        return Refused(503, "Verification did not finish", detail, {"Retry-After": "5"})

    def stop(self) -> None:
        self._stopped.set()
        process = self._process
        if process is not None and process.exitcode is None:
            process.terminate()


def _chain_head(entries: list[JournalEntry]) -> str:
    """The hash of a chain's last entry ("" when there is none): what a result is kept by."""
    return entries[-1].hash if entries else ""


def _context() -> ForkServerContext:
    """Processes forked from a server that has this module (and so the audit) loaded: they
    start in milliseconds, and none inherits the service's threads or connections."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(_preloaded())
    return context


def _preloaded() -> list[str]:
    """This module, and the program's main module: multiprocessing runs that again in each
    process it starts (as `__mp_main__`), which costs only a moment once its imports are
    loaded. A `__main__` module (`python -m pkg`) runs unguarded, so never that one."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    name = getattr(spec, "name", None)
    by_name = [name] if name and name != "__main__" and not name.endswith(".__main__") else []
    return ["__main__", *by_name, __name__]


def _serve(sender: Connection, job: Job, *args: Any) -> None:
    """The verification process: run the job, send back its outcome or the traceback. It
    runs at a lower CPU priority, so on a busy machine the service's requests go first."""
    os.nice(NICENESS)
    try:
        outcome: Outcome | str = job(*args)
    except Exception:
        outcome = traceback.format_exc()
    sender.send(outcome)
    sender.close()
