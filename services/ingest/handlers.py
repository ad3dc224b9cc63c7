"""Accept a batch: refuse what can never count, drop what was already published, publish
the rest, remember it. A refused batch publishes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.ingest import door, signatures, store
from services.ingest.bounds import TooLarge
from services.ingest.contracts import Contract, ContractBook
from services.ingest.measurements import (
    Accepted,
    MeasurementIn,
    content_digest,
    event_id_of,
    event_json,
)
from services.ingest.signatures import Signer
from shared import cloudevents
from shared.bus import Message
from shared.core.periods import PeriodFinder, period_of
from shared.events import TOPIC_MEASUREMENTS, BatchSigned, MeasurementRecorded, make_event, utcnow
from shared.publishing import to_message
from shared.runtime import Runtime
from shared.signed_requests import SignedRequest, body_digest
from shared.telemetry import inject_headers, tracer


class Refused(Exception):
    """Items that can never count; nothing of their batch was published."""

    def __init__(self, refusals: Sequence[door.Refusal]) -> None:
        super().__init__(f"{len(refusals)} refusal(s)")
        self.refusals = sorted(refusals, key=lambda r: r.index)


async def accept_batch(
    runtime: Runtime,
    book: ContractBook,
    items: Sequence[MeasurementIn],
    source: str,
    signed: SignedRequest | None = None,
) -> Accepted:
    """Reply only after the bus acknowledged every new event (raises `BusUnavailable`), or
    raise `Refused` naming every item that can never count, or `BadSignature` (see
    `signatures.signer_of`). A signed request is published as it came, before its
    measurements, which name it (raises `TooLarge` if it does not fit in one record)."""
    now = utcnow()
    refusals = await check_terms(runtime, book, items, now)
    contract_ids = {item.contract_id for item in items}
    skew = runtime.settings.max_clock_skew_s
    signer = signatures.signer_of(book, signed, contract_ids, skew)
    batch = None if signer is None else signer.request.digest
    source = source if signer is None else f"agent:{signer.key_id}"
    refused = {r.index for r in refusals}
    refused_values = {r.index for r in refusals if r.field == "value"}
    values = [  # a refused value may be 1e999999999: never spelled out
        "" if i in refused_values else door.value_text(item.value) for i, item in enumerate(items)
    ]
    event_ids = [event_id_of(item, batch, i) for i, item in enumerate(items)]
    digests = [content_digest(item, value) for item, value in zip(items, values, strict=True)]
    new, conflicts = await unpublished(runtime, event_ids, digests)
    refusals.extend(conflict(index, items[index]) for index in conflicts)
    with tracer(__name__).start_as_current_span("ingest.publish"):
        base = {"type": MeasurementRecorded.TYPE, **inject_headers()}
        make_headers = cloudevents.RecordHeaders(base, MeasurementRecorded.TYPE)
        limit = runtime.settings.max_record_bytes
        messages = []
        for event_id, i in new.items():
            if i in refused:
                continue
            item = items[i]
            key = item.contract_id
            value = event_json(item, event_id, source, now, values[i], provenance(signer, i, item))
            headers = make_headers(event_id, key, item.observed_at)
            size = len(value) + len(key.encode()) + make_headers.bytes_of(headers)
            if size > limit:
                refusals.append(too_large(i, size, limit))
            messages.append(Message(key=key, value=value, headers=headers))
        if refusals:
            raise Refused(refusals)
        if signer is not None and messages:
            contracts = sorted({message.key for message in messages})
            batches = [batch_message(signer, c, source, now, limit) for c in contracts]
            messages = [*batches, *messages]
        await runtime.bus.publish(TOPIC_MEASUREMENTS, messages)
    await store.remember_published(runtime.engine, {e: digests[i] for e, i in new.items()})
    return Accepted(accepted=len(new), duplicates=len(items) - len(new))


async def unpublished(
    runtime: Runtime, event_ids: Sequence[str], digests: Sequence[str]
) -> tuple[dict[str, int], list[int]]:
    """The batch's events not published before (event id -> its first index in the batch),
    and the indexes of those whose id was published, or repeated, with another digest."""
    seen = await store.already_published(runtime.engine, set(event_ids))
    new: dict[str, int] = {}
    conflicts = []
    for index, event_id in enumerate(event_ids):
        first = seen.get(event_id) or (digests[new[event_id]] if event_id in new else None)
        if first is None:
            new[event_id] = index
        elif first != digests[index]:
            conflicts.append(index)
    return new, conflicts


@dataclass(frozen=True, slots=True)
class Placed:
    """Where an item falls: its contract as ingest knows it, the item's period in the
    contract's time zone (None where it has none), and the contract's current period."""

    contract: Contract | None
    period: str | None
    current: str


async def placed(
    runtime: Runtime, book: ContractBook, items: Sequence[tuple[str, datetime]], now: datetime
) -> list[Placed]:
    """Each (contract id, instant), placed; catches up on the contracts topic once if a
    contract is not known here yet."""
    contract_ids = {contract_id for contract_id, _ in items}
    if any(book.get(c) is None for c in contract_ids):
        await book.catch_up(runtime.bus, runtime.settings.publish_timeout_s)
    contracts = {c: book.get(c) for c in contract_ids}
    timezones = {c: found.timezone if found else "UTC" for c, found in contracts.items()}
    finders = {c: PeriodFinder(tz) for c, tz in timezones.items()}
    current = {c: period_of(now, tz) for c, tz in timezones.items()}
    found = []
    for contract_id, at in items:
        try:
            period: str | None = finders[contract_id](at)
        except (OverflowError, ValueError):  # year 1 west of UTC has no local period
            period = None
        found.append(Placed(contracts[contract_id], period, current[contract_id]))
    return found


async def check_terms(
    runtime: Runtime, book: ContractBook, items: Sequence[MeasurementIn], now: datetime
) -> list[door.Refusal]:
    """Each item against its contract's terms and the bounds on values."""
    where = await placed(runtime, book, [(i.contract_id, i.observed_at) for i in items], now)
    refusals = []
    allowed: set[tuple[str, str, str]] = set()  # (contract, KPI, period): the terms count it
    for index, (item, place) in enumerate(zip(items, where, strict=True)):
        key = (item.contract_id, item.kpi, place.period)
        if place.period is None or key not in allowed:
            refusal = door.terms_refusal(
                index, place.contract, item.kpi, place.period, place.current
            )
            if refusal is not None:
                refusals.append(refusal)
            elif place.period is not None:
                allowed.add((item.contract_id, item.kpi, place.period))
        if (refusal := door.value_refusal(index, item.value)) is not None:
            refusals.append(refusal)
    return refusals


def provenance(signer: Signer | None, index: int, item: MeasurementIn) -> dict[str, Any] | None:
    """What a measurement of a signed request says of it: the request, its place, the party."""
    if signer is None:
        return None
    return {
        "batch": signer.request.digest,
        "batch_index": index,
        "party": signer.parties[item.contract_id],
    }


def batch_message(
    signer: Signer, contract_id: str, source: str, now: datetime, limit: int
) -> Message:
    """The `sla.batch.signed` event of a signed request, for one contract it names."""
    request = signer.request
    data = BatchSigned(
        digest=request.digest,
        key_id=signer.key_id,
        party=signer.parties[contract_id],
        method=request.method,
        path=request.path,
        content_type=request.content_type,
        content_digest=request.content_digest or "",
        signature_input=request.signature_input,
        signature=request.signature,
        body=request.body.decode(),
    )
    producer_id = f"batch:{request.digest}:{body_digest(request.signature.encode())}"
    event = make_event(
        data, contract_id=contract_id, source=source, producer_id=producer_id, recorded_at=now
    )
    message = to_message(event, inject_headers())
    if (size := record_size(message)) > limit:
        raise TooLarge(
            f"a signed request is published whole, and this one would take {size} bytes on "
            f"the bus; at most {limit}: send fewer measurements per signed request"
        )
    return message


def conflict(index: int, item: MeasurementIn) -> door.Refusal:
    return door.Refusal(
        index,
        "measurement_id",
        "conflict",
        f"conflict: measurement_id {item.measurement_id!r} was published with other content "
        "(kpi, value, observed_at or labels); a measurement, once published, stays as it is",
    )


def too_large(index: int, size: int, limit: int) -> door.Refusal:
    return door.Refusal(
        index,
        "labels",
        "record_too_large",
        f"this measurement's event would take {size} bytes on the bus; at most {limit}",
    )


def record_size(message: Message) -> int:
    headers = cloudevents.header_bytes(message.headers)
    return len(message.value) + len(message.key.encode()) + headers
