"""`slapay audit`: check a statement with nothing but the bus (and, optionally, a database)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from shared import audit

# Each command imports what it needs when it runs (as services/cli.py does): `slapay --help`
# loads neither the audit nor the database and broker clients.

app = typer.Typer(help="Verify statements against the raw events.", no_args_is_help=True)


EXIT_OK, EXIT_DIFFERENCES, EXIT_NOTHING_FINAL, EXIT_UNREADABLE = 0, 1, 2, 3
"""`slapay audit verify` exits 0 when everything matches, 1 with differences, 2 when there is
nothing final to verify (the period is open, or the bus has no such contract), 3 when the bus
or the database could not be read."""


@dataclass(frozen=True)
class Outcome:
    differences: list[dict[str, Any]]
    checked: str = ""
    nothing_final: str | None = None


@app.command("verify")
def verify(
    contract: Annotated[str, typer.Option(help="contract id")],
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    database_url: Annotated[
        str | None, typer.Option(help="also check the journal rows in this ledger database")
    ] = None,
) -> None:
    """Recompute from the bus, check the hash chain and every adjustment's cause (and the
    ledger's database, if given). Exit 0: all matches; 1: differences; 2: nothing final to
    verify; 3: the bus or the database could not be read."""
    from aiokafka.errors import KafkaError
    from sqlalchemy.exc import SQLAlchemyError

    from shared import eventloop
    from shared.bus import BusUnavailable
    from shared.core.periods import PERIOD_PATTERN

    if not re.fullmatch(PERIOD_PATTERN, period):
        typer.echo(f"slapay: --period {period!r} is not YYYY-MM", err=True)
        raise typer.Exit(EXIT_NOTHING_FINAL)
    try:
        outcome = eventloop.run(_verify(contract, period, database_url))
    except (BusUnavailable, OSError, SQLAlchemyError, KafkaError) as exc:
        typer.echo(f"slapay: could not read the bus or the database: {exc}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from exc
    if outcome.nothing_final is not None:
        typer.echo(f"nothing final to verify: {outcome.nothing_final}")
        raise typer.Exit(EXIT_NOTHING_FINAL)
    if outcome.differences:
        for difference in outcome.differences:
            typer.echo(json.dumps(difference, sort_keys=True, default=str))
        typer.echo(
            f"FAILED: {len(outcome.differences)} difference(s) in {contract} {period}", err=True
        )
        raise typer.Exit(EXIT_DIFFERENCES)
    typer.echo(f"OK: {contract} {period} — {outcome.checked}")


async def _verify(contract: str, period: str, database_url: str | None) -> Outcome:
    from shared import audit, db, heap
    from shared.bus.factory import create_bus
    from shared.settings import Settings

    bus = create_bus(Settings())
    await bus.start()
    try:
        with heap.paused_collector(kept_till_exit=True):  # this process ends with the check
            history = await audit.read_history(bus, contract)
        reason = audit.nothing_final(history, period)
        if reason is not None:
            return Outcome([], nothing_final=reason)
        rows: Sequence[audit.Row] | None = None
        if database_url:
            engine = db.create_engine(database_url)
            try:
                history, rows = await audit.in_step(
                    bus, history, lambda: _database_rows(engine, contract)
                )
            finally:
                await engine.dispose()
    finally:
        await bus.stop()
    differences = audit.verify(history, period, rows, store="ledger database")
    checked = f"{len(history.measurements)} measurements, {len(history.entries)} entries on the bus"
    if rows is not None:
        checked += f", the same {len(rows)} entries in the database"
    return Outcome(differences, checked)


async def _database_rows(engine: AsyncEngine, contract: str) -> list[audit.Row]:
    """The contract's journal rows, every column, in the ledger's chain order."""
    from sqlalchemy import select

    from services.ledger.journal_store import journal

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(journal).where(journal.c.contract_id == contract).order_by(journal.c.seq)
        )
        return [dict(row._mapping) for row in rows]


@app.command("verify-signature")
def verify_signature(
    file: Annotated[str, typer.Argument(help="a statement's JSON, as downloaded; - for stdin")],
    keys: Annotated[
        str | None,
        typer.Option(
            help="the JWK set (file or http(s) URL of /.well-known/slapay-keys.json) or a PEM "
            "bundle; default: this installation's keys (SLAPAY_SIGNING_KEYS or the data dir)"
        ),
    ] = None,
) -> None:
    """Check a final statement's Ed25519 signature offline; exit 0 only when it is valid."""
    import httpx

    from shared import signing
    from shared.settings import ConfigurationError

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        statement = json.loads(text)
        known = _signature_keys(keys)
    except (OSError, ValueError, ConfigurationError, httpx.HTTPError) as exc:
        typer.echo(f"slapay: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(statement, dict):
        typer.echo("slapay: the file is not a statement (a JSON object)", err=True)
        raise typer.Exit(2)
    what = f"{statement.get('contract_id')} {statement.get('period')}"
    try:
        kid = signing.verify(statement, known)
    except signing.SignatureInvalid as exc:
        typer.echo(f"FAILED: {what}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"OK: {what} total {statement.get('total')} signed by key {kid}")


def _signature_keys(source: str | None) -> dict[str, Any]:
    import httpx

    from shared import signing
    from shared.settings import Settings

    if source is None:
        return signing.load_keyring(Settings(), create=False).keys
    if source.startswith(("http://", "https://")):
        response = httpx.get(source, timeout=10, follow_redirects=True)
        response.raise_for_status()
        content = response.content
    else:
        content = Path(source).read_bytes()
    if content.lstrip().startswith(b"-----BEGIN"):
        return signing.parse_bundle(content).keys
    return signing.keys_from_jwks(json.loads(content))
