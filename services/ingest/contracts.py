"""The contracts ingest checks measurements against, followed from `slapay.contracts`.

Like token revocation (`shared/revocation.py`), each process reads the whole topic with a
consumer group of its own that never commits, and keeps every terms version it saw (in
memory: the topic is the record, and a restarted process reads it again). A contract not
seen yet may have just been agreed: before refusing it, `ContractBook.catch_up` re-reads
the topic to its end, one re-read at a time however many requests wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shared.bus import Bus, BusUnavailable, Record
from shared.core.agents import AgentKey
from shared.core.periods import PERIOD_PATTERN, check_timezone
from shared.events import TOPIC_CONTRACTS, Envelope, TermsAgreed
from shared.retrying import retrying

log = logging.getLogger(__name__)


class _KpiName(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    name: str
    ticket_metric: str | None = None


class DoorTerms(BaseModel):
    """The part of a terms version the door reads; lenient about the rest, so that a
    version the ledger folds is never unknown here."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    effective_from: Annotated[str, Field(pattern=PERIOD_PATTERN)]
    timezone: Annotated[str, AfterValidator(check_timezone)] = "UTC"
    kpis: tuple[_KpiName, ...] = ()
    late_events_months: int = 12
    agents: tuple[AgentKey, ...] = ()
    require_signed: bool = False

    def has_kpi(self, name: str) -> bool:
        return any(kpi.name == name for kpi in self.kpis)

    def has_ticket_kpis(self) -> bool:
        return any(kpi.ticket_metric is not None for kpi in self.kpis)

    def is_ticket_kpi(self, name: str) -> bool:
        return any(kpi.name == name and kpi.ticket_metric is not None for kpi in self.kpis)


@dataclass(frozen=True)
class Contract:
    """The terms versions of one contract, in version order."""

    contract_id: str
    versions: tuple[DoorTerms, ...]

    @property
    def timezone(self) -> str:
        return self.versions[-1].timezone

    @property
    def first(self) -> str:
        """The first period any version is in force."""
        return min(version.effective_from for version in self.versions)


class ContractBook:
    """Every contract this process has seen agreed, with its terms versions."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, DoorTerms]] = {}
        self._lock = asyncio.Lock()
        self._started = 0  # re-reads begun
        self._finished = 0  # the number of the last re-read that reached the end

    def get(self, contract_id: str) -> Contract | None:
        found = self._versions.get(contract_id)
        if not found:
            return None
        return Contract(contract_id, tuple(found[v] for v in sorted(found)))

    def add(self, records: Iterable[Record]) -> None:
        """Take the terms versions in `records`; anything else on the topic is skipped."""
        for record in records:
            if record.headers.get("type", TermsAgreed.TYPE) != TermsAgreed.TYPE:
                continue
            try:
                event = Envelope.from_json(record.value)
                if event.type != TermsAgreed.TYPE:
                    continue
                agreed = event.payload()
                assert isinstance(agreed, TermsAgreed)
                terms = DoorTerms.model_validate(agreed.terms)
            except (ValidationError, ValueError) as exc:
                log.warning("unreadable terms on %s: %s", TOPIC_CONTRACTS, str(exc)[:200])
                continue
            self._versions.setdefault(event.contract_id, {})[agreed.version] = terms

    async def catch_up(self, bus: Bus, timeout_s: float) -> None:
        """Re-read the topic to its end, unless a re-read that began after this call was
        made has already done so. Raises `BusUnavailable` if the bus cannot be read."""
        wanted = self._started + 1
        async with self._lock:
            if self._finished >= wanted:
                return
            self._started += 1
            number = self._started
            try:
                async with asyncio.timeout(timeout_s):
                    async for chunk in bus.read_chunks(TOPIC_CONTRACTS):
                        self.add(chunk)
            except BusUnavailable:
                raise
            except Exception as exc:  # whatever the adapter raised: the bus could not be read
                log.warning("re-reading %s failed: %r", TOPIC_CONTRACTS, exc)
                raise BusUnavailable(f"could not read {TOPIC_CONTRACTS}: {exc!r}") from exc
            self._finished = number


async def follow_contracts(book: ContractBook, bus: Bus, service: str) -> None:
    """Read `slapay.contracts` into `book` until cancelled, restarting after any failure."""

    async def follow() -> None:
        consumer = bus.consumer([TOPIC_CONTRACTS], f"{service}.contracts.{uuid.uuid4().hex}")
        try:
            await consumer.start()
            while True:
                book.add(await consumer.fetch(max_records=1000, timeout_s=0.5))
        finally:
            await consumer.stop()

    await retrying(follow, what=f"following {TOPIC_CONTRACTS}")
