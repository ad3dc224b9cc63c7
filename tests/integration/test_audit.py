"""An outsider checks a bill: recompute from the bus, verify the chain, catch tampering."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from shared import jsonutil
from tests.integration.test_ledger import CONTRACT, availability, journal, setup_closed_september
from tests.system import System, eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def verification(system: System, period: str = "2026-09") -> dict:
    response = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/statements/{period}/verify",
        headers=system.token("auditor", [CONTRACT]),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def audit_cli(
    system: System, *extra: str, period: str = "2026-09", contract: str = CONTRACT
) -> subprocess.CompletedProcess[str]:
    settings = system.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    env.update(
        PYTHONPATH=str(ROOT), SLAPAY_BUS=settings.bus, SLAPAY_DATA_DIR=str(settings.data_dir)
    )
    command = [
        sys.executable,
        "-m",
        "services.cli",
        "audit",
        "verify",
        "--contract",
        contract,
        "--period",
        period,
        *extra,
    ]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def ledger_url(system: System) -> str:
    return system.settings.database_url_for("ledger")


async def test_a_final_statement_and_its_corrections_verify(system: System) -> None:
    await setup_closed_september(system, up=1000)
    await system.ingest.post(
        "/v1/measurements",
        json=availability(5, 0, prefix="late"),
        headers=system.token("agent", [CONTRACT]),
    )
    await eventually(lambda: journal(system), lambda es: any(e["kind"] == "adjustment" for e in es))
    await eventually(lambda: verification(system), lambda v: v["entries_checked"] == 6)
    report = await verification(system)
    assert report["verified"] is True, report["differences"]
    assert report["events_on_bus"] == 1005
    cli = await audit_cli(system, "--database-url", ledger_url(system))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.startswith("OK: acme-2026 2026-09")


async def test_tampering_is_named(system: System) -> None:
    await setup_closed_september(system, up=995)
    entries = await journal(system)
    await eventually(lambda: verification(system), lambda v: v["entries_checked"] == len(entries))
    credit = entries[1]
    # The statements read model: edit a served entry's amount behind the service's back.
    engine = system.apps["statements"].state.runtime.engine
    forged = jsonutil.dumps({**credit, "amount": "-10.00"}).decode()
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE journal_entries SET body = :b WHERE entry_id = :e"),
            {"b": forged, "e": credit["entry_id"]},
        )
    report = await verification(system)
    assert report["verified"] is False
    named = {d.get("entry_id") for d in report["differences"]}
    assert credit["entry_id"] in named
    # The ledger's own journal: a superuser drops the append-only guard and edits a row.
    ledger = system.apps["ledger"].state.runtime.engine
    async with ledger.begin() as conn:
        if ledger.dialect.name == "sqlite":
            await conn.execute(text("DROP TRIGGER journal_no_update"))
        else:
            await conn.execute(text("ALTER TABLE journal DISABLE TRIGGER journal_no_change"))
        await conn.execute(
            text("UPDATE journal SET body = :b WHERE entry_id = :e"),
            {"b": forged, "e": credit["entry_id"]},
        )
    cli = await audit_cli(system, "--database-url", ledger_url(system))
    assert cli.returncode == 1
    assert credit["entry_id"] in cli.stdout
    assert "FAILED" in cli.stderr


async def test_an_open_period_has_nothing_final_to_verify(system: System) -> None:
    await setup_closed_september(system, up=995)
    response = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/statements/2026-10/verify",
        headers=system.token("auditor", [CONTRACT]),
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Nothing final to verify"
    open_period = await audit_cli(system, period="2026-10")
    assert open_period.returncode == 2, open_period.stdout + open_period.stderr
    assert open_period.stdout.startswith("nothing final to verify: ")
    unknown = await audit_cli(system, contract="nobody-2026")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "nothing final to verify: no contract nobody-2026" in unknown.stdout
    assert (await audit_cli(system)).returncode == 0


async def test_an_accepted_dispute_verifies_by_its_resolution(system: System) -> None:
    final = await setup_closed_september(system, up=995)
    customer, admin = system.token("customer", [CONTRACT]), system.token()
    opened = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes",
        headers=customer,
        json={"period": "2026-09", "line_id": final["lines"][1]["line_id"], "reason": "planned"},
    )
    dispute_id = opened.json()["dispute_id"]
    resolved = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes/{dispute_id}/resolve",
        headers=admin,
        json={"decision": "accepted", "amount": "500.00", "note": "half"},
    )
    assert resolved.status_code == 202, resolved.text
    await eventually(lambda: journal(system), lambda es: any(e.get("dispute_id") for e in es))
    report = await eventually(lambda: verification(system), lambda v: v["entries_checked"] == 6)
    assert report["verified"] is True, report["differences"]
    cli = await audit_cli(system, "--database-url", ledger_url(system))
    assert cli.returncode == 0, cli.stdout + cli.stderr
