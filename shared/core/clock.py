"""A ticket's clock in business time: its response and resolution durations (docs/tickets.md).

Pure functions of a calendar and one ticket's events, shared by the ledger and the auditor.
Events may come in any order; they are applied in time order, and a sequence that no
helpdesk could produce raises `TicketSequenceError` naming the offending event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import groupby
from typing import Literal, Protocol

from shared.core.calendars import BusinessCalendar, Interval
from shared.core.tickets import at_text, to_the_second

Metric = Literal["response", "resolution"]
State = Literal["new", "open", "paused", "resolved"]

RANK = ("opened", "reopened", "resumed", "responded", "paused", "resolved")
"""The order in which events at the same instant are tried: starts before stops."""

_NEXT: dict[tuple[State, str], State] = {
    ("new", "opened"): "open",
    ("open", "responded"): "open",
    ("paused", "responded"): "paused",
    ("resolved", "responded"): "resolved",
    ("open", "paused"): "paused",
    ("paused", "resumed"): "open",
    ("open", "resolved"): "resolved",
    ("paused", "resolved"): "resolved",
    ("resolved", "reopened"): "open",
}
_WHERE: dict[State, str] = {
    "new": "before 'opened'",
    "open": "while the ticket is open",
    "paused": "while the ticket is paused",
    "resolved": "after 'resolved' without 'reopened'",
}


class TicketEvent(Protocol):
    """What the clock reads of an event: `TicketEventIn` and `TicketEventRecorded` both fit."""

    @property
    def type(self) -> str: ...

    @property
    def at(self) -> datetime: ...


class TicketSequenceError(ValueError):
    """A ticket's events that no helpdesk could produce; `index` is the offending event's."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Step:
    """One event applied: its index in the input, its instant, and the state it led to."""

    index: int
    type: str
    at: datetime
    before: State
    after: State


def steps(events: Sequence[TicketEvent], start: State = "new") -> Iterator[Step]:
    """The events in the order they apply: by instant, then the first of `RANK` that the
    ticket's state allows. Raises `TicketSequenceError` at the first event none allows."""
    for index, event in enumerate(events):
        if event.type not in RANK:
            raise TicketSequenceError(f"{event.type!r} is not a ticket event type", index)
        if event.at.utcoffset() is None:
            raise TicketSequenceError(f"{event.type!r} has an instant without offset", index)
    ordered = sorted(enumerate(events), key=lambda pair: to_the_second(pair[1].at))
    state = start
    for at, group in groupby(ordered, key=lambda pair: to_the_second(pair[1].at)):
        pending = sorted(group, key=lambda pair: RANK.index(pair[1].type))
        while pending:
            allowed = [i for i, (_, event) in enumerate(pending) if (state, event.type) in _NEXT]
            if not allowed:
                index, event = pending[0]
                message = f"{event.type!r} at {at_text(at)} is not allowed {_WHERE[state]}"
                raise TicketSequenceError(message, index)
            index, event = pending.pop(allowed[0])
            after = _NEXT[state, event.type]
            yield Step(index, event.type, at, state, after)
            state = after


def check_fragment(events: Sequence[TicketEvent]) -> None:
    """Raise `TicketSequenceError` unless some earlier history could make these events of
    one ticket valid (the events of a ticket in one batch: one that fails would never count)."""
    failures: list[TicketSequenceError] = []
    starts: tuple[State, ...] = ("new", "open", "paused", "resolved")
    for start in starts:
        try:
            for _ in steps(events, start):
                pass
            return
        except TicketSequenceError as error:
            failures.append(error)
    raise max(failures, key=lambda error: to_the_second(events[error.index].at))


@dataclass(frozen=True)
class Measure:
    """A ticket's clock for one metric: business seconds, the spans that counted (UTC), and
    the instant the clock stopped (None while it runs or is paused)."""

    seconds: int
    spans: tuple[Interval, ...]
    stopped_at: datetime | None

    @property
    def hours(self) -> Fraction:
        return Fraction(self.seconds, 3600)


@dataclass(frozen=True)
class _Runs:
    runs: tuple[Interval, ...]  # closed runs; a run still going started at `since`
    since: datetime | None
    stopped_at: datetime | None
    state: State


def _runs(events: Sequence[TicketEvent], metric: Metric, until: datetime | None) -> _Runs:
    """The wall-clock intervals during which the metric's clock ran, before `until`."""
    applied = list(steps(events))  # the whole ticket is checked, whatever `until` cuts off
    runs: list[Interval] = []
    since: datetime | None = None
    stopped_at: datetime | None = None
    state: State = "new"
    for step in applied:
        if until is not None and step.at >= until:
            break
        state = step.after
        if metric == "response":
            if stopped_at is not None:
                continue
            if step.type in ("responded", "resolved"):
                stopped_at = step.at
        elif step.after == "resolved":
            stopped_at = step.at if step.before != "resolved" else stopped_at
        else:
            stopped_at = None
        running = state == "open" and stopped_at is None
        if running and since is None:
            since = step.at
        elif not running and since is not None:
            runs.append((since, step.at))
            since = None
    return _Runs(tuple(runs), since, stopped_at, state)


def _cutoff(until: datetime | None) -> datetime | None:
    if until is not None and until.utcoffset() is None:
        raise ValueError("`until` needs an offset")
    return None if until is None else to_the_second(until)


def measure(
    calendar: BusinessCalendar,
    events: Sequence[TicketEvent],
    metric: Metric,
    until: datetime | None = None,
) -> Measure:
    """The ticket's `metric` clock, up to `until` (exclusive) if given.

    Response runs from `opened` to the first `responded` (or `resolved`, if it comes first);
    resolution runs to the last `resolved`, `reopened` restarting it where it stopped. Time
    between `paused` and `resumed` never counts. Without `until`, the clock must have stopped.
    """
    cutoff = _cutoff(until)
    measured = _runs(events, metric, cutoff)
    runs = list(measured.runs)
    if cutoff is not None and measured.since is not None:
        runs.append((measured.since, cutoff))
    elif cutoff is None and measured.stopped_at is None:
        what = "was never opened" if measured.state == "new" else f"{metric} clock has not stopped"
        raise ValueError(f"the ticket {what}: give `until` to measure it so far")
    spans: list[Interval] = []
    for start, end in runs:
        for span in calendar.working_intervals(start, end):
            if spans and spans[-1][1] == span[0]:
                spans[-1] = (spans[-1][0], span[1])
            else:
                spans.append(span)
    seconds = sum((end - start) // timedelta(seconds=1) for start, end in spans)
    return Measure(seconds, tuple(spans), measured.stopped_at)


def business_duration(
    calendar: BusinessCalendar,
    events: Sequence[TicketEvent],
    metric: Metric,
    until: datetime | None = None,
) -> Fraction:
    """The ticket's business hours for `metric`, exact to the second."""
    return measure(calendar, events, metric, until).hours


def spans(
    calendar: BusinessCalendar,
    events: Sequence[TicketEvent],
    metric: Metric,
    until: datetime | None = None,
) -> tuple[Interval, ...]:
    """The UTC business spans that counted, in order (a line's derivation shows them)."""
    return measure(calendar, events, metric, until).spans


def stopped_at(
    events: Sequence[TicketEvent], metric: Metric, until: datetime | None = None
) -> datetime | None:
    """The instant the `metric` clock stopped for good (before `until`), else None: the
    ticket counts in the period this instant falls in."""
    return _runs(events, metric, _cutoff(until)).stopped_at
