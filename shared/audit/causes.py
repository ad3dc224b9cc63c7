"""Every adjustment has its cause on the bus: late events of the period it corrects whose
recomputation brings the line to exactly where the adjustment leaves it, or a
`dispute.resolved` that accepted exactly its amount for a `dispute.opened` on that line.

An adjustment is checked together with every adjustment of the same period before it, in
chain order: the line stands at its final amount plus all of them, as in the ledger. One
without a cause is named and left out of that sum, so it is not blamed on the next one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from shared.audit.finals import ADJUSTMENT, Difference, final_entries, recompute
from shared.audit.reading import History
from shared.core import money
from shared.core.journal import JournalEntry
from shared.core.payment import Statement


def adjustment_differences(h: History, period: str) -> list[Difference]:
    """Each adjustment that corrects `period` or is posted into it, without its cause or
    with an amount its cause does not give."""
    mine = [
        e for e in h.entries if e.kind == ADJUSTMENT and period in (e.corrects_period, e.period)
    ]
    wanted = {e.entry_id for e in mine}
    differences: list[Difference] = []
    for corrected in dict.fromkeys(e.corrects_period for e in mine):
        differences += _corrections(h, corrected, wanted)
    return differences


def _corrections(h: History, corrected: str | None, wanted: set[str]) -> list[Difference]:
    """The adjustments correcting `corrected`, in chain order; differences of `wanted` ones."""
    finals = final_entries(h.entries, corrected) if isinstance(corrected, str) else []
    posted: dict[str, Decimal] = defaultdict(Decimal)
    for final in finals:
        posted[final.line_id] += final.amount
    at_close: tuple[tuple[str, str], ...] | None = None
    settled: dict[str, str] = {}
    differences: list[Difference] = []
    for entry in h.entries:
        if entry.kind != ADJUSTMENT or entry.corrects_period != corrected:
            continue
        report = entry.entry_id in wanted
        line_id = entry.corrects_line_id
        recomputed: Statement | None = None
        if not isinstance(corrected, str):
            problem: dict[str, Any] | None = {"problem": "names no period it corrects"}
        elif not finals:
            problem = {"problem": f"corrects {corrected}, which has no final statement"}
        elif not isinstance(line_id, str):
            problem = {"problem": "names no line it corrects"}
        elif entry.dispute_id is not None:
            problem = _dispute_problem(h, entry, finals, settled)
        else:
            if at_close is None:
                at_close = _digests(recompute(h, corrected, finals[0].inputs))
            recomputed = recompute(h, corrected, entry.inputs)
            problem = (
                {"problem": f"no late event of {corrected} on the bus before it"}
                if recomputed is None or _digests(recomputed) == at_close
                else None
            )
        if problem is not None:
            if report:
                differences.append(_named(entry, problem))
            continue
        assert isinstance(line_id, str)
        if recomputed is None:  # a settled dispute: its amount stands apart from the formula
            continue
        posted[line_id] += entry.amount
        if not report:
            continue
        line = next((x for x in recomputed.lines if x.line_id == line_id), None)
        should = line.amount if line else Decimal(0)
        if posted[line_id] != should:
            differences.append(
                {
                    "check": "adjustment",
                    "entry_id": entry.entry_id,
                    "line_id": line_id,
                    "problem": "the late events bring the line elsewhere",
                    "expected": str(should),
                    "found": str(posted[line_id]),
                }
            )
    return differences


def _dispute_problem(
    h: History,
    entry: JournalEntry,
    finals: list[JournalEntry],
    settled: dict[str, str],
) -> dict[str, Any] | None:
    """Why `entry` is not the adjustment of an accepted dispute; None when it is."""
    dispute_id = str(entry.dispute_id)
    dispute = h.disputes.get(dispute_id)
    if dispute is None:
        return {"problem": f"no dispute.opened {dispute_id} of this contract on the bus"}
    corrects = (entry.corrects_period, entry.corrects_line_id)
    if (dispute.period, dispute.line_id) != corrects:
        return {
            "problem": f"dispute {dispute_id} was opened on another line",
            "expected": f"{dispute.period} {dispute.line_id}",
            "found": f"{corrects[0]} {corrects[1]}",
        }
    if dispute.line_id not in {f.line_id for f in finals}:
        return {"problem": f"dispute {dispute_id} names no line of {dispute.period}'s statement"}
    if dispute.decision != "accepted":
        return {
            "problem": f"dispute {dispute_id} was not accepted",
            "found": dispute.decision or "no dispute.resolved",
        }
    try:
        accepted = money.to_minor_unit(dispute.amount or 0, entry.currency)
    except (ArithmeticError, ValueError):
        return {"problem": f"dispute {dispute_id} accepted no {entry.currency} amount"}
    if entry.amount != accepted:
        return {
            "problem": f"dispute {dispute_id} accepted another amount",
            "expected": str(accepted),
            "found": str(entry.amount),
        }
    if dispute_id in settled:
        return {"problem": f"dispute {dispute_id} was settled by entry {settled[dispute_id]}"}
    settled[dispute_id] = entry.entry_id
    return None


def _named(entry: JournalEntry, problem: Mapping[str, Any]) -> Difference:
    named = {
        "check": "adjustment_cause",
        "entry_id": entry.entry_id,
        "period": entry.period,
        "corrects_period": entry.corrects_period,
        "line_id": entry.corrects_line_id,
        "amount": str(entry.amount),
    }
    if entry.dispute_id is not None:
        named["dispute_id"] = entry.dispute_id
    return {**named, **problem}


def _digests(statement: Statement | None) -> tuple[tuple[str, str], ...]:
    """Which events each line counted: equal for two recomputations that saw the same."""
    if statement is None:
        return ()
    return tuple((x.line_id, x.derivation.events_digest) for x in statement.lines)
