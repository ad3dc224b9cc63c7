"""Tampering the audit names, on both buses: an adjustment forged through the ledger's outbox,
a journal row deleted behind the append-only trigger, a stored column edited; in the ledger's
database (`slapay audit verify --database-url`) and in the statements read model (`GET
…/verify`)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import journal_store
from services.ledger.book import event_message
from services.ledger.domain import posting
from shared.core.journal import chain
from shared.events import JournalEntryPosted
from tests.integration.test_audit import audit_cli, ledger_url, verification
from tests.integration.test_ledger import (
    CONTRACT,
    availability,
    journal,
    setup_closed_september,
)
from tests.system import System, eventually

pytestmark = pytest.mark.integration


def named(output: str) -> list[dict[str, Any]]:
    """The differences `slapay audit verify` printed, one JSON object a line."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def ledger_engine(system: System) -> AsyncEngine:
    engine: AsyncEngine = system.apps["ledger"].state.runtime.engine
    return engine


def read_model(system: System) -> AsyncEngine:
    engine: AsyncEngine = system.apps["statements"].state.runtime.engine
    return engine


async def without_guard(system: System, statement: str, **params: Any) -> None:
    """Run `statement` on the ledger's journal as an owner who drops the append-only guard."""
    engine = ledger_engine(system)
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text("DROP TRIGGER IF EXISTS journal_no_update"))
            await conn.execute(text("DROP TRIGGER IF EXISTS journal_no_delete"))
        else:
            await conn.execute(text("ALTER TABLE journal DISABLE TRIGGER journal_no_change"))
        await conn.execute(text(statement), params)


async def test_an_adjustment_forged_through_the_outbox_is_named(system: System) -> None:
    final = await setup_closed_september(system, up=995)
    entries = await journal(system)
    last = entries[-1]
    dispute = {
        "dispute_id": str(uuid.uuid4()),
        "period": "2026-09",
        "line_id": final["lines"][1]["line_id"],
    }
    at = datetime.now(UTC)
    body = posting.dispute_body(CONTRACT, "2026-10", "EUR", dispute, Decimal("-5000.00"), at, {})
    forged = chain(last["hash"], body, CONTRACT, last["seq"] + 1).document()
    async with ledger_engine(system).begin() as conn:
        message = event_message(JournalEntryPosted(entry=forged), CONTRACT, at, "forged")
        await journal_store.enqueue(conn, [message])
    report = await eventually(
        lambda: verification(system), lambda v: v["entries_checked"] == len(entries) + 1
    )
    assert report["verified"] is False
    cause = [d for d in report["differences"] if d["check"] == "adjustment_cause"]
    assert [(d["entry_id"], d["dispute_id"]) for d in cause] == [
        (forged["entry_id"], dispute["dispute_id"])
    ]
    cli = await audit_cli(system)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert [d["entry_id"] for d in named(cli.stdout) if d["check"] == "adjustment_cause"] == [
        forged["entry_id"]
    ]
    with_database = named((await audit_cli(system, "--database-url", ledger_url(system))).stdout)
    assert sorted((d["check"], d["entry_id"]) for d in with_database) == [
        ("adjustment_cause", forged["entry_id"]),
        ("missing_from_database", forged["entry_id"]),  # it never went through the ledger
    ]


async def test_a_deleted_tail_entry_is_named(system: System) -> None:
    await setup_closed_september(system, up=1000)
    before = await eventually(lambda: verification(system), lambda v: v["verified"] is True)
    late = availability(5, 0, prefix="late")
    agent = system.token("agent", [CONTRACT])
    assert (
        await system.ingest.post("/v1/measurements", json=late, headers=agent)
    ).status_code == 202
    entries = await eventually(
        lambda: journal(system), lambda es: any(e["kind"] == "adjustment" for e in es)
    )
    tail = entries[-1]
    assert tail["kind"] == "adjustment" and tail["amount"] == "-1000.00"
    report = await eventually(
        lambda: verification(system), lambda v: v["entries_checked"] == len(entries)
    )
    assert report["verified"] is True, report["differences"]
    assert (await audit_cli(system, "--database-url", ledger_url(system))).returncode == 0
    await without_guard(system, "DELETE FROM journal WHERE entry_id = :e", e=tail["entry_id"])
    cli = await audit_cli(system, "--database-url", ledger_url(system))
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert [(d["check"], d["entry_id"]) for d in named(cli.stdout)] == [
        ("missing_from_database", tail["entry_id"])
    ]
    async with read_model(system).begin() as conn:
        await conn.execute(
            text("DELETE FROM journal_entries WHERE entry_id = :e"), {"e": tail["entry_id"]}
        )
    # the read model's head is now the one verified before the late event: that result,
    # kept by its head, must not answer for a chain the bus has moved on from
    report = await verification(system)
    assert report["verified"] is False
    assert [(d["check"], d["store"], d["entry_id"]) for d in report["differences"]] == [
        ("missing_from_database", "statements read model", tail["entry_id"])
    ]
    assert report["entries_checked"] == before["entries_checked"]


async def test_an_edited_stored_column_is_named(system: System) -> None:
    await setup_closed_september(system, up=995)
    entries = await journal(system)
    credit = entries[1]
    assert credit["amount"] == "-1000.00"
    await eventually(lambda: verification(system), lambda v: v["entries_checked"] == len(entries))
    await without_guard(
        system, "UPDATE journal SET amount_minor = -1000 WHERE entry_id = :e", e=credit["entry_id"]
    )
    cli = await audit_cli(system, "--database-url", ledger_url(system))
    assert cli.returncode == 1, cli.stdout + cli.stderr
    [difference] = named(cli.stdout)
    assert difference == {
        **difference,
        "check": "stored_column",
        "entry_id": credit["entry_id"],
        "column": "amount_minor",
        "expected": -100000,
        "found": -1000,
    }
    async with read_model(system).begin() as conn:
        await conn.execute(
            text("UPDATE journal_entries SET amount = '-10.00' WHERE entry_id = :e"),
            {"e": credit["entry_id"]},
        )
    report = await verification(system)
    assert report["verified"] is False
    assert [(d["check"], d["column"], d["found"]) for d in report["differences"]] == [
        ("stored_column", "amount", "-10.00")
    ]
