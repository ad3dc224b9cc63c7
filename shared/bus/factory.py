"""Pick the bus adapter the settings name."""

from __future__ import annotations

from shared.bus import Bus
from shared.bus.kafka import KafkaBus
from shared.bus.sqllog import SqlLogBus
from shared.settings import Settings


def create_bus(settings: Settings) -> Bus:
    if settings.bus.startswith("kafka://"):
        return KafkaBus(
            settings.kafka_bootstrap(),
            partitions=settings.kafka_partitions,
            session_timeout_ms=settings.consumer_session_timeout_ms,
            publish_timeout_s=settings.publish_timeout_s,
        )
    return SqlLogBus(settings.bus_log_url(), poll_interval_s=settings.log_poll_interval_s)
