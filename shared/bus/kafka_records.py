"""Records as they come out of aiokafka's fetcher: the bus's `Record`, its lazily decoded
headers, and two fast paths that aiokafka has no hook for.

- **Straight from the fetcher.** Consumers the bus made (their key deserializer is `as_is`)
  get `Record`s made by aiokafka's fetcher itself, not a `ConsumerRecord` each (a dataclass
  aiokafka builds in Python, 11 fields a record) that the bus then copies.
- **A keyed read skips the other keys unbuilt.** A read of one key (`OnlyKey` as the key
  deserializer) reads the whole partition the key maps to; the records of other keys are
  passed over as aiokafka's parser yields them, with no object made for them and no step of
  the fetcher's generator each (docs/benchmarks.md has what each saves).

`install()` puts a subclass in place of aiokafka's `PartitionRecords`, where the fetcher makes
one per fetched partition, and only if that class still has the methods and signatures relied
on here; otherwise nothing changes, the bus copies records as usual and filters keyed reads
after the copy. Any other consumer in the process gets aiokafka's own records. The bus
contract tests read every field back on both paths.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException

from shared.bus import Record


class LazyHeaders(Mapping[str, str]):
    """A record's headers, decoded only when asked: each record carries its own CloudEvents
    attributes, while a consumer mostly asks for one (`type`, to pick its reader). A header
    the bus gives null or non-UTF-8 reads as decoded with replacement, never an error."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: tuple[tuple[str, bytes | None], ...]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        if self._decoded is None:
            for name, value in reversed(self._raw):  # the last of a repeated name, as a dict
                if name == key:
                    return (value or b"").decode(errors="replace")
            return default
        return self._decoded.get(key, default)

    def _all(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = {k: (v or b"").decode(errors="replace") for k, v in self._raw}
        return self._decoded

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


def headers_of(raw: tuple[tuple[str, bytes | None], ...]) -> Mapping[str, str]:
    return LazyHeaders(raw)


_new_tuple = tuple.__new__
"""Builds a NamedTuple from its fields in order, without the Python-level `__new__` around
it: a `Record` is made for every record read."""


def record_of(tp: TopicPartition | Any, record: Any) -> Record:
    """The `Record` of aiokafka's parsed record (offset, key, value, headers) in `tp`."""
    return _new_tuple(
        Record,
        (
            tp.topic,
            tp.partition,
            record.offset,
            (record.key or b"").decode(),
            record.value,
            headers_of(tuple(record.headers)),
        ),
    )


def as_is(key: bytes | None) -> bytes | None:
    """The key deserializer of the bus's consumers: the key as it came. Its identity marks
    them for the fast path."""
    return key


class OnlyKey:
    """The key deserializer of a read of one key: the key as it came, and the key wanted,
    which marks the reader for the keyed fast path. Without that path the reader still gets
    every record of the partition (the bus filters them after the copy)."""

    __slots__ = ("key",)

    def __init__(self, key: bytes) -> None:
        self.key = key

    def __call__(self, key: bytes | None) -> bytes | None:
        return key


class _PartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc]  # untyped
    next_fetch_offset: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        deserializer = getattr(self, "_key_deserializer", None)
        if deserializer is as_is or type(deserializer) is OnlyKey:
            self._consumer_record = record_of  # shadows the method for this partition

    def _unpack_records(self) -> Iterator[Any]:
        only = self._key_deserializer
        if type(only) is not OnlyKey:
            return cast("Iterator[Any]", super()._unpack_records())
        return self._unpack_key(only.key)

    def _unpack_key(self, wanted: bytes) -> Iterator[Record]:
        """aiokafka's `_unpack_records` for a read of one key outside any transaction (the bus
        never writes in one): control batches skipped, CRCs checked, and only the wanted key's
        records made and yielded; the position moves past each batch as a whole."""
        tp = self._tp
        records = self._records
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {tp}")
            if not batch.is_control_batch:
                start = self.next_fetch_offset
                for record in batch:
                    if record.key == wanted and record.offset >= start:
                        self.next_fetch_offset = record.offset + 1
                        yield record_of(tp, record)
            self.next_fetch_offset = batch.next_offset


def installable() -> bool:
    """Whether the installed aiokafka's fetcher is one these paths know."""
    if fetcher.PartitionRecords is _PartitionRecords:
        return True  # checked as it was installed
    consumer_record = getattr(fetcher.PartitionRecords, "_consumer_record", None)
    unpack = getattr(fetcher.PartitionRecords, "_unpack_records", None)
    init = inspect.signature(fetcher.PartitionRecords.__init__).parameters
    return (
        consumer_record is not None
        and unpack is not None
        and list(inspect.signature(consumer_record).parameters) == ["self", "tp", "record"]
        and list(inspect.signature(unpack).parameters) == ["self"]
        and {"key_deserializer", "fetch_offset", "check_crcs"} <= set(init)
    )


def install() -> bool:
    """Switch the fast paths on for this process; False (nothing changed) where aiokafka's
    internals are not those they rely on. Installing twice changes nothing."""
    if not installable():
        return False
    fetcher.PartitionRecords = _PartitionRecords
    return True
