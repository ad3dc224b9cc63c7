"""The fold's fast path on Kafka: the bus's consumers get `Record`s made by aiokafka's fetcher
itself, not a `ConsumerRecord` each (a dataclass aiokafka builds in Python, 11 fields a
record) that the bus then copies. docs/benchmarks.md has what it saves.

aiokafka has no hook for this: `install()` puts a subclass in place of its `PartitionRecords`,
where the fetcher makes one per fetched partition, and only if that class still has the method
and signature relied on here; otherwise nothing changes and the bus copies records as usual.
Only consumers the bus made (their key deserializer is `kafka.as_is`) are affected. The fold
calls `install()` when it starts; the bus contract tests read every field back on both paths.
"""

from __future__ import annotations

import inspect
from typing import Any

from aiokafka.consumer import fetcher

from shared.bus import kafka


class _PartitionRecords(fetcher.PartitionRecords):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self, "_key_deserializer", None) is kafka.as_is:
            self._consumer_record = kafka.record_of  # shadows the method for this partition


def installable() -> bool:
    """Whether the installed aiokafka's fetcher is one this path knows."""
    method = getattr(fetcher.PartitionRecords, "_consumer_record", None)
    return method is not None and list(inspect.signature(method).parameters) == [
        "self",
        "tp",
        "record",
    ]


def install() -> bool:
    """Switch the fast path on for this process; False (nothing changed) where aiokafka's
    internals are not those it relies on. Installing twice changes nothing."""
    if fetcher.PartitionRecords is _PartitionRecords:
        return True
    if not installable():
        return False
    fetcher.PartitionRecords = _PartitionRecords
    return True
