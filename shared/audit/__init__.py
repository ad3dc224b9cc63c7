"""Verify a statement without trusting the running system: recompute it from the raw events
on the bus with the same `compute_statement`, check the hash chain, the digests and the
cause of every adjustment, and (given one) a stored copy of the journal against the bus.

What "verifying a period" covers is in `shared.audit.verify`.
"""

from shared.audit.reading import (
    Dispute,
    History,
    Journal,
    history,
    read_history,
    read_journal,
)
from shared.audit.stored import Row
from shared.audit.verify import NothingFinal, in_step, nothing_final, verify

__all__ = [
    "Dispute",
    "History",
    "Journal",
    "NothingFinal",
    "Row",
    "history",
    "in_step",
    "nothing_final",
    "read_history",
    "read_journal",
    "verify",
]
