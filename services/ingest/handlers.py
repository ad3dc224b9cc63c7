"""Accept a batch: drop what was already published, publish the rest, remember it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import store
from services.ingest.measurements import Accepted, MeasurementBatch, event_id_of, event_json
from shared import cloudevents
from shared.bus import Bus, Message
from shared.events import TOPIC_MEASUREMENTS, MeasurementRecorded, utcnow
from shared.telemetry import inject_headers, tracer


async def accept_batch(
    engine: AsyncEngine, bus: Bus, batch: MeasurementBatch, source: str
) -> Accepted:
    """Reply only after the bus acknowledged every new event (raises `BusUnavailable`)."""
    fresh: dict[str, int] = {}
    for index, item in enumerate(batch.measurements):
        fresh.setdefault(event_id_of(item), index)
    seen = await store.already_published(engine, fresh.keys())
    new = {event_id: index for event_id, index in fresh.items() if event_id not in seen}
    with tracer(__name__).start_as_current_span("ingest.publish"):
        headers = {"type": MeasurementRecorded.TYPE, **inject_headers()}
        now = utcnow()
        messages = [
            Message(
                key=batch.measurements[i].contract_id,
                value=event_json(batch.measurements[i], event_id, source, now),
                headers=cloudevents.headers(
                    headers,
                    event_id,
                    MeasurementRecorded.TYPE,
                    batch.measurements[i].contract_id,
                    batch.measurements[i].observed_at,
                ),
            )
            for event_id, i in new.items()
        ]
        await bus.publish(TOPIC_MEASUREMENTS, messages)
    await store.remember_published(engine, new.keys())
    return Accepted(accepted=len(new), duplicates=len(batch.measurements) - len(new))
