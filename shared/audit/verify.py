"""Verifying period P of a contract: what is checked, from the bus alone or beside a stored
copy of the journal.

- The contract's whole hash chain as published, and that no entry id was published twice
  with different content or without an entry's fields.
- P's final entries against their recomputation from the events on the bus before P closed,
  and the published `statement.finalized` of P against the chain.
- That every record the cuts of those entries name was read (`shared.audit.completeness`).
- Every adjustment correcting P, and every adjustment posted into P (whatever it corrects),
  against its cause (see `shared.audit.causes`).
- Every measurement of P against the signed request it came in, or, unsigned, against
  terms that did not require a signature (see `shared.audit.provenance`).
- With a stored journal: every entry on both sides, each stored body as published, the
  stored chain intact, the columns beside each body agreeing with it.

A period with no final entries and no final statement on the bus has nothing to verify.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from shared.audit.causes import adjustment_differences
from shared.audit.completeness import unread_cuts
from shared.audit.finals import Difference, final_differences, final_entries
from shared.audit.provenance import provenance_differences
from shared.audit.reading import History, read_journal
from shared.audit.stored import Row, stored_differences, stored_ids
from shared.bus import Bus
from shared.core.journal import chain_breaks


class NothingFinal(Exception):
    """The period has no final statement on the bus: it is open, or not the contract's."""


def nothing_final(h: History, period: str) -> str | None:
    """Why there is nothing final to verify for `period`; None when there is."""
    if not h.terms:
        return f"no contract {h.contract_id} on the bus"
    if period in h.finals or final_entries(h.entries, period):
        return None
    return f"{h.contract_id} {period} has no final statement (the period is still open)"


def verify(
    h: History, period: str, stored: Sequence[Row] | None = None, store: str = "database"
) -> list[Difference]:
    """Every difference found; empty means period `period` checks out. Raises
    `NothingFinal` when it has no final statement on the bus.

    `stored`: the rows of a stored copy of the journal (`store` names it), in its order."""
    reason = nothing_final(h, period)
    if reason is not None:
        raise NothingFinal(reason)
    differences: list[Difference] = [{"check": "hash_chain", **b} for b in chain_breaks(h.entries)]
    differences += [
        {
            "check": "published_twice",
            "entry_id": entry.entry_id,
            "problem": "published again with other content",
            "found": entry.hash,
        }
        for entry in h.journal.conflicts
    ]
    differences += [
        {"check": "malformed_entry", "problem": "published as an entry but not in an entry's form"}
        for _ in h.journal.malformed
    ]
    differences += unread_cuts(h, period)
    differences += final_differences(h, period)
    differences += adjustment_differences(h, period)
    differences += provenance_differences(h, period)
    if stored is not None:
        differences += stored_differences(h.entries, stored, store)
    return differences


async def in_step(
    bus: Bus,
    h: History,
    read_rows: Callable[[], Awaitable[Sequence[Row]]],
    patience_s: float = 3.0,
) -> tuple[History, Sequence[Row]]:
    """The history and the stored rows once they hold the same entries, or as they are after
    `patience_s`: a live ledger stores an entry a moment before it is published, and a
    read model a moment after, which is no difference."""
    rows = await read_rows()
    deadline = time.monotonic() + patience_s
    while stored_ids(rows) != {e.entry_id for e in h.entries} and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        h = replace(h, journal=await read_journal(bus, h.contract_id))
        rows = await read_rows()
    return h, rows
