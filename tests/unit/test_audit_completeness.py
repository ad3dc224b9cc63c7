"""The audit reads a contract's records by key (on Kafka: one partition). A journal entry
whose cut names records beyond those read (another partition after keys moved, or offsets
past the end of what was read) is a `completeness` difference, not a silent recount."""

from __future__ import annotations

from dataclasses import replace

from shared.audit import verify
from shared.audit.completeness import unread_cuts
from tests.unit.test_audit_verify import closed_september


def test_a_history_that_holds_every_record_its_cuts_name_is_complete() -> None:
    h, _ = closed_september()
    assert unread_cuts(h, "2026-09") == []


def test_a_cut_naming_a_partition_that_was_not_read_is_named() -> None:
    """Partitions added to the topic: the contract's later records went to partition 1,
    which the partition its key maps to now (0) does not hold."""
    h, journal = closed_september()
    moved = journal.entries[0].model_copy(
        update={"inputs": {"slapay.measurements": {"0": {"offset": 999}, "1": {"offset": 41}}}}
    )
    h.journal = replace(h.journal, entries=[moved, *journal.entries[1:]])
    [difference] = unread_cuts(h, "2026-09")
    assert difference["check"] == "completeness"
    assert difference["entry_id"] == moved.entry_id
    assert (difference["expected"], difference["found"]) == (41, None)
    assert "partition 1" in difference["problem"]
    assert "completeness" in [d["check"] for d in verify(h, "2026-09")]


def test_a_read_that_stopped_short_of_the_cut_is_named() -> None:
    h, journal = closed_september()
    h.measurements = h.measurements[:500]  # offsets 0..499 read; the close applied up to 999
    found = unread_cuts(h, "2026-09")
    assert [(d["expected"], d["found"]) for d in found] == [(999, 499)] * len(journal.entries)
    assert unread_cuts(h, "2026-08") == []  # a check of another month does not rest on them
