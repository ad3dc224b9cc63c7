"""`slapay audit`: check a statement with nothing but the bus (and, optionally, a database)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from shared import audit
from shared.bus.factory import create_bus
from shared.settings import Settings

app = typer.Typer(help="Verify statements against the raw events.", no_args_is_help=True)


@app.command("verify")
def verify(
    contract: Annotated[str, typer.Option(help="contract id")],
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    database_url: Annotated[
        str | None, typer.Option(help="also check the journal rows in this ledger database")
    ] = None,
) -> None:
    """Recompute from the bus, check the hash chain; exit 0 only when everything matches."""
    differences, checked = asyncio.run(_verify(contract, period, database_url))
    if differences:
        for difference in differences:
            typer.echo(json.dumps(difference, sort_keys=True))
        typer.echo(f"FAILED: {len(differences)} difference(s) in {contract} {period}", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: {contract} {period} — {checked}")


async def _verify(
    contract: str, period: str, database_url: str | None
) -> tuple[list[dict[str, Any]], str]:
    bus = create_bus(Settings())
    await bus.start()
    try:
        history = await audit.read_history(bus, contract)
    finally:
        await bus.stop()
    if not history.terms:
        return [{"check": "contract", "problem": f"no terms of {contract} on the bus"}], ""
    differences = audit.verify(history, period)
    checked = f"{len(history.measurements)} measurements, {len(history.entries)} entries on the bus"
    if database_url:
        entries = await _database_entries(database_url, contract)
        differences += audit.verify(history, period, entries)
        checked += f", {len(entries)} entries in the database"
    return differences, checked


async def _database_entries(url: str, contract: str) -> list[dict[str, Any]]:
    from services.ledger import journal_store
    from shared import db

    engine = db.create_engine(url)
    try:
        return await journal_store.entries(engine, contract)
    finally:
        await engine.dispose()
