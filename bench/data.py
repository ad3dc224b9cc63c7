"""Synthetic measurements: ingest request bodies, the envelopes ingest would publish for them,
and the rows the ledger fold would write, so slapay and its baselines move the same data."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from bench.core import chunks
from services.demo import demo_terms
from services.ingest.measurements import MeasurementIn, event_id_of, event_json
from shared import cloudevents
from shared.bus import Message
from shared.bus.factory import create_bus
from shared.core.periods import period_of
from shared.events import TOPIC_CONTRACTS, MeasurementRecorded, TermsAgreed, make_event, utcnow
from shared.settings import Settings

CONTRACTS = tuple(f"bench-{i:02d}" for i in range(8))
KPIS = ("availability", "latency_ms")
SOURCE = "agent:bench"
COPY_COLUMNS = ("event_id", "contract_id", "period", "kpi", "value", "occurred_at")

Item = dict[str, Any]
CopyRow = tuple[str, str, str, str, float, datetime]


def items(count: int, tag: str | None = None) -> list[Item]:
    """`count` measurements with unique ids, spread over the contracts, two KPIs and a month."""
    tag = tag or uuid.uuid4().hex[:12]
    return [
        {
            "measurement_id": f"{tag}-{i}",
            "contract_id": CONTRACTS[i % len(CONTRACTS)],
            "kpi": KPIS[i % len(KPIS)],
            "value": float(40 + i % 400) if i % 2 else float(i % 97 != 0),
            "observed_at": instant(i, count),
            "labels": {"probe": f"probe-eu-{i % 4}"},
        }
        for i in range(count)
    ]


async def agree_contracts(settings: dict[str, str]) -> None:
    """Agree every bench contract on the bus these ingest settings name, as the ledger
    would, so that ingest's door counts their measurements."""
    bus = create_bus(Settings(**settings))  # type: ignore[arg-type]
    await bus.start()
    try:
        events = [
            make_event(
                TermsAgreed(
                    version=1,
                    terms={**demo_terms("2026-01"), "contract_id": c, "late_events_months": 120},
                ),
                contract_id=c,
                source="bench",
            )
            for c in CONTRACTS
        ]
        await bus.publish(
            TOPIC_CONTRACTS,
            [
                Message(key=e.contract_id, value=e.to_json(), headers={"type": e.type})
                for e in events
            ],
        )
    finally:
        await bus.stop()


def instant(i: int, count: int, days: int = 28) -> str:
    """The `i`th of `count` instants spread evenly over the first `days` of October 2026,
    to the millisecond as agents send them: distinct, as real measurements' are."""
    ms = i * (days * 86_400_000 - 1) // max(count, 1)
    day, rest = divmod(ms, 86_400_000)
    second, milli = divmod(rest, 1000)
    return (
        f"2026-10-{1 + day:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:"
        f"{second % 60:02d}.{milli:03d}Z"
    )


def request_bodies(batch: Sequence[Item], size: int) -> list[tuple[bytes, int]]:
    """`POST /v1/measurements` bodies of `size` items each, with their item counts."""
    return [
        (orjson.dumps({"measurements": list(chunk)}), len(chunk)) for chunk in chunks(batch, size)
    ]


def messages(batch: Sequence[Item]) -> list[Message]:
    """The `sla.measurement.recorded` records ingest publishes, built by its own builders
    (the envelope, and the CloudEvents headers each record carries)."""
    now = utcnow()
    headers = {
        "type": MeasurementRecorded.TYPE,
        "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
    }
    result = []
    for raw in batch:
        item = MeasurementIn.model_validate(raw)
        event_id = event_id_of(item)
        value = event_json(item, event_id, SOURCE, now)
        record_headers = cloudevents.headers(
            headers, event_id, MeasurementRecorded.TYPE, item.contract_id, item.observed_at
        )
        result.append(Message(key=item.contract_id, value=value, headers=record_headers))
    return result


def copy_rows(batch: Sequence[Item]) -> list[CopyRow]:
    """The rows the fold writes to `measurements` for these items (contracts in UTC)."""
    rows = []
    for raw in batch:
        item = MeasurementIn.model_validate(raw)
        rows.append(
            (
                event_id_of(item),
                item.contract_id,
                period_of(item.observed_at, "UTC"),
                item.kpi,
                float(item.value),  # the column the fold writes today (ledger store)
                item.observed_at,
            )
        )
    return rows
