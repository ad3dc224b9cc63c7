"""What the ledger posts: final entries at close, adjustments after it. Pure functions.

An entry body is public (it is hashed into the chain and published): money as decimal
strings, `posted_at` taken from the event that caused the posting, so that a replay of
the bus posts the very same entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.core import money
from shared.core.aggregates import events_digest
from shared.core.journal import EntryBody, JournalEntry
from shared.core.statement import Derivation, Entry, Line, Statement, Status

ADJUSTMENT = "adjustment"


def timestamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def final_bodies(
    statement: Statement, posted_at: datetime, inputs: Mapping[str, Any]
) -> list[EntryBody]:
    """One entry per computed line of a period being closed."""
    return [
        _body(
            statement.contract_id,
            statement.period,
            statement.currency,
            line,
            posted_at,
            inputs=inputs,
            terms_version=statement.terms_version,
        )
        for line in statement.lines
    ]


def effective_amounts(entries: Iterable[EntryBody], period: str) -> dict[str, Decimal]:
    """What the formula has posted for each line of `period` so far: its final entry plus
    every correction after late events. An accepted dispute's adjustment stands apart: a
    later correction must not undo what the parties settled."""
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        if entry.kind != ADJUSTMENT and entry.period == period:
            amounts[entry.line_id] += entry.amount
        elif entry.dispute_id is not None:
            continue
        elif entry.corrects_period == period and entry.corrects_line_id:
            amounts[entry.corrects_line_id] += entry.amount
    return dict(amounts)


def correction_bodies(
    recomputed: Statement,
    posted: Mapping[str, Decimal],
    into_period: str,
    posted_at: datetime,
    late_event_ids: Iterable[str],
    inputs: Mapping[str, Any],
) -> list[EntryBody]:
    """Adjustments (posted into `into_period`) that bring each line of a closed period to
    what the late events make it; none where nothing changed."""
    digest = events_digest(late_event_ids)
    bodies = []
    recomputed_ids = {line.line_id for line in recomputed.lines}
    gone = [_zero_line(lid, recomputed.currency) for lid in posted if lid not in recomputed_ids]
    for line in (*recomputed.lines, *gone):
        delta = line.amount - posted.get(line.line_id, Decimal(0))
        if delta == 0:
            continue
        text = money.format_money(delta, recomputed.currency)
        description = (
            f"Correction of {recomputed.period} {line.kind.replace('_', ' ')}"
            f"{' for ' + line.kpi if line.kpi else ''}: {text} {recomputed.currency} after late "
            f"events (now {money.format_money(line.amount, recomputed.currency)})."
        )
        derivation = line.derivation.model_copy(
            update={
                "corrects_period": recomputed.period,
                "corrects_line_id": line.line_id,
                "events_digest": digest,
            }
        )
        adjustment = Line(
            line_id=f"{recomputed.contract_id}:{into_period}:adjustment:{line.line_id}",
            kind="adjustment",
            kpi=line.kpi,
            amount=delta,
            description=description,
            derivation=derivation,
        )
        bodies.append(
            _body(
                recomputed.contract_id,
                into_period,
                recomputed.currency,
                adjustment,
                posted_at,
                inputs=inputs,
                terms_version=recomputed.terms_version,
                corrects_period=recomputed.period,
                corrects_line_id=line.line_id,
            )
        )
    return bodies


def _zero_line(line_id: str, currency: str) -> Line:
    """A line a recomputation no longer has (e.g. a cap no longer reached): now zero."""
    kind, kpi = line_id.split(":")[2:4]
    return Line(
        line_id=line_id,
        kind=kind,
        kpi=kpi or None,
        amount=money.to_minor_unit(0, currency),
        description="",
    )


def dispute_body(
    contract_id: str,
    into_period: str,
    currency: str,
    dispute: Mapping[str, Any],
    amount: Decimal,
    posted_at: datetime,
    inputs: Mapping[str, Any],
) -> EntryBody:
    text = money.format_money(amount, currency)
    line = Line(
        line_id=f"{contract_id}:{into_period}:adjustment:dispute:{dispute['dispute_id']}",
        kind="adjustment",
        amount=money.to_minor_unit(amount, currency),
        description=(
            f"Dispute {dispute['dispute_id']} on {dispute['period']} accepted: "
            f"{text} {currency}. {dispute.get('note', '')}".strip()
        ),
        derivation=Derivation(
            corrects_period=dispute["period"],
            corrects_line_id=dispute["line_id"],
            dispute_id=dispute["dispute_id"],
            events_digest=events_digest(dispute.get("evidence_event_ids", [])),
        ),
    )
    return _body(
        contract_id,
        into_period,
        currency,
        line,
        posted_at,
        inputs=inputs,
        corrects_period=dispute["period"],
        corrects_line_id=dispute["line_id"],
        dispute_id=dispute["dispute_id"],
    )


def _body(
    contract_id: str,
    period: str,
    currency: str,
    line: Line,
    posted_at: datetime,
    *,
    inputs: Mapping[str, Any],
    terms_version: int | None = None,
    corrects_period: str | None = None,
    corrects_line_id: str | None = None,
    dispute_id: str | None = None,
) -> EntryBody:
    return EntryBody(
        contract_id=contract_id,
        period=period,
        kind=line.kind,
        line_id=line.line_id,
        kpi=line.kpi,
        amount=line.amount,
        currency=currency,
        description=line.description,
        derivation=line.derivation,
        events_digest=line.derivation.events_digest,
        terms_version=terms_version,
        corrects_period=corrects_period,
        corrects_line_id=corrects_line_id,
        dispute_id=dispute_id,
        inputs=dict(inputs),
        posted_at=timestamp(posted_at),
    )


def compose(
    computed: Statement,
    adjustments: Iterable[EntryBody],
    *,
    status: Status,
    entries: Iterable[JournalEntry] = (),
) -> Statement:
    """The statement of a period: its computed lines plus the adjustments posted into it."""
    lines = (*computed.lines, *(e.line for e in adjustments))
    return Statement(
        contract_id=computed.contract_id,
        period=computed.period,
        status=status,
        terms_version=computed.terms_version,
        currency=computed.currency,
        total=sum((line.amount for line in lines), Decimal(0)).quantize(computed.total),
        lines=lines,
        entries=tuple(
            Entry(entry_id=e.entry_id, hash=e.hash, prev_hash=e.prev_hash) for e in entries
        ),
    )
