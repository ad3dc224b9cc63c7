"""KPI aggregations, and the incremental per-(period, KPI) state that folds measurements.

There is one implementation of each aggregation (docs/architecture.md, "The payment
formula", step 1): the ledger folds measurements batch by batch into a `KpiState`, and
`compute_statement` builds the same state from the whole period, so both reach the very
same value.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

from shared.core import decimals

SIMPLE_AGGREGATIONS = frozenset({"mean", "min", "max", "sum", "count", "share_within"})
_PERCENTILE = re.compile(r"^p((?:[1-9]\d?|0)(?:\.\d*[1-9])?)$")


def percentile_of(aggregation: str) -> Decimal | None:
    """The NN of a `pNN` aggregation ("p99.9" gives 99.9), or None for any other name."""
    match = _PERCENTILE.match(aggregation)
    if match is None:
        return None
    percent = Decimal(match.group(1))
    return percent if 0 < percent < 100 else None


def check_aggregation(aggregation: str) -> str:
    """Return the name if it is a known aggregation, else raise `ValueError`."""
    if aggregation in SIMPLE_AGGREGATIONS or percentile_of(aggregation) is not None:
        return aggregation
    raise ValueError(
        f"unknown aggregation {aggregation!r}: use mean, min, max, sum, count, share_within"
        " or pNN with 0 < NN < 100 (p95, p99.9)"
    )


def nearest_rank(percent: Decimal, count: int) -> int:
    """The 1-based nearest rank ⌈percent/100 · count⌉, computed exactly (p99.9 of 1000 is 999)."""
    return max(1, math.ceil(Fraction(percent) * count / 100))


def events_digest(event_ids: Iterable[str]) -> str:
    """`"sha256:" + hex(sha256("\\n".join(sorted(event_ids))))`, as docs/architecture.md pins it."""
    joined = "\n".join(sorted(event_ids))
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()


def sorted_digest(ordered_ids: Iterable[str]) -> tuple[int, str]:
    """How many ids, and their `events_digest`, from ids already in order, a stream read
    once: the digest of a million ids without holding them."""
    hasher = hashlib.sha256()
    count = 0
    for event_id in ordered_ids:
        hasher.update(("\n" + event_id if count else event_id).encode())
        count += 1
    return count, "sha256:" + hasher.hexdigest()


def merged(runs: Iterable[Iterable[str]]) -> Iterator[str]:
    """The union of runs of ids, each in order, in order and once each."""
    last = None
    for event_id in heapq.merge(*runs):
        if event_id != last:
            yield event_id
            last = event_id


class KpiFigures(Protocol):
    """What a statement reads of one KPI's measurements in one period: `KpiState` holds
    them, a ledger's period summary only the figures (docs/architecture.md, "Closing,
    corrections, disputes")."""

    @property
    def count(self) -> int: ...

    def value(self, aggregation: str, threshold: Decimal | None = None) -> Fraction | None: ...

    def digest(self) -> str: ...

    def sorted_ids(self) -> Iterable[str]:
        """The counted event ids in order (the credit cap's line digests a union of them)."""
        ...


class KpiState:
    """The measurements of one KPI in one period, folded one at a time.

    `add` is idempotent per event id: the first value seen for an id counts, a repeat
    changes nothing. Values are the decimals their JSON spells and the sum is exact, so
    0.1 + 0.2 is 0.3 and the mean does not depend on the order of arrival; values are
    sorted lazily, so folding a million measurements is linear and percentiles stay exact.
    """

    __slots__ = ("_sorted", "_sum", "_unsorted", "_values")

    def __init__(self) -> None:
        self._values: dict[str, Decimal] = {}
        self._sorted: list[Decimal] = []
        self._unsorted = False
        self._sum = Decimal(0)

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, Decimal]]) -> KpiState:
        """A state holding these (event_id, value) pairs, e.g. reloaded from storage."""
        state = cls()
        for event_id, value in items:
            state.add(event_id, value)
        return state

    def add(self, event_id: str, value: Decimal) -> bool:
        """Fold one measurement in; False if this event id was already counted."""
        if event_id in self._values:
            return False
        if not (isinstance(value, Decimal) and value.is_finite()):
            raise ValueError(f"measurement {event_id} has no finite decimal value: {value!r}")
        self._values[event_id] = value
        if self._sorted and value < self._sorted[-1]:
            self._unsorted = True
        self._sorted.append(value)
        self._sum = decimals.add(self._sum, value)
        return True

    def _ordered(self) -> list[Decimal]:
        if self._unsorted:
            self._sorted.sort()
            self._unsorted = False
        return self._sorted

    @property
    def exact_sum(self) -> Decimal:
        return self._sum

    def items(self) -> tuple[tuple[str, Decimal], ...]:
        """Every counted (event_id, value) pair, ordered by event id."""
        return tuple(sorted(self._values.items()))

    @property
    def count(self) -> int:
        return len(self._sorted)

    @property
    def event_ids(self) -> frozenset[str]:
        return frozenset(self._values)

    def digest(self) -> str:
        """The `events_digest` of the measurements counted."""
        return events_digest(self._values)

    def sorted_ids(self) -> list[str]:
        return sorted(self._values)

    def value(self, aggregation: str, threshold: Decimal | None = None) -> Fraction | None:
        """The KPI value under `aggregation`, exactly, or None when there are no measurements."""
        count = len(self._sorted)
        if count == 0:
            return None
        if aggregation == "mean":
            return Fraction(self._sum) / count
        if aggregation == "sum":
            return Fraction(self._sum)
        if aggregation == "count":
            return Fraction(count)
        values = self._ordered()
        if aggregation == "min":
            return Fraction(values[0])
        if aggregation == "max":
            return Fraction(values[-1])
        if aggregation == "share_within":
            if threshold is None:
                raise ValueError("share_within needs a threshold")
            return Fraction(bisect.bisect_right(values, threshold), count)
        percent = percentile_of(aggregation)
        if percent is None:
            raise ValueError(f"unknown aggregation {aggregation!r}")
        return Fraction(values[nearest_rank(percent, count) - 1])
