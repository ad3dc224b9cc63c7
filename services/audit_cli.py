"""`slapay audit`: check a statement with nothing but the bus (and, optionally, a database)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from shared import audit, eventloop, heap
from shared.bus.factory import create_bus
from shared.settings import ConfigurationError, Settings

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
    differences, checked = eventloop.run(_verify(contract, period, database_url))
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
        with heap.paused_collector(kept_till_exit=True):  # this process ends with the check
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
    from shared import signing

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
    from shared import signing

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
