"""Put events on the bus: key = contract_id; headers carry `type`, `traceparent` and the
CloudEvents binary-mode attributes (`shared/cloudevents.py`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from shared import cloudevents
from shared.bus import Bus, Message
from shared.events import Envelope
from shared.telemetry import inject_headers, tracer


def to_message(event: Envelope, trace_headers: dict[str, str]) -> Message:
    return Message(
        key=event.contract_id,
        value=event.to_json(),
        headers=cloudevents.envelope_headers(event, {"type": event.type, **trace_headers}),
    )


async def publish_events(bus: Bus, events: Sequence[Envelope]) -> None:
    """Publish durably, topic by topic, in the given order; raises `BusUnavailable`."""
    by_topic: dict[str, list[Envelope]] = defaultdict(list)
    for event in events:
        by_topic[event.topic].append(event)
    with tracer(__name__).start_as_current_span("slapay.publish"):
        trace_headers = inject_headers()
        for topic, group in by_topic.items():
            await bus.publish(topic, [to_message(e, trace_headers) for e in group])
