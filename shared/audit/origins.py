"""Where a contract's measurements came from, as the bus records it: the signed requests
(`sla.batch.signed`) and, per measurement, when it arrived and which request it names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from shared.consuming import Delivered
from shared.events import BatchSigned
from shared.measured import DeliveredMeasurement, Incoming


@dataclass(frozen=True, slots=True)
class Origin:
    """A measurement's arrival: when, and (signed) its batch, place in it and party."""

    recorded_at: datetime
    party: str | None
    batch: str | None
    batch_index: int | None


@dataclass(frozen=True, slots=True)
class Batch:
    """A signed request as published, and when."""

    recorded_at: datetime
    signed: BatchSigned


@dataclass
class Origins:
    measurements: dict[str, Origin] = field(default_factory=dict)
    batches: dict[str, list[Batch]] = field(default_factory=dict)

    def add(self, events: Iterable[Incoming]) -> None:
        """Take the origins of `events` (a contract's, in bus order; the first copy wins)."""
        for event in events:
            if isinstance(event, DeliveredMeasurement):
                self.measurements.setdefault(
                    event.event_id,
                    Origin(event.recorded_at, event.party, event.batch, event.batch_index),
                )
            elif isinstance(event, Delivered) and event.type == BatchSigned.TYPE:
                signed = event.event.payload()
                assert isinstance(signed, BatchSigned)
                batch = Batch(event.event.recorded_at, signed)
                self.batches.setdefault(signed.digest, []).append(batch)
