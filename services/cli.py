"""The `slapay` command: run the system, serve one service, issue tokens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from importlib import import_module
from typing import Annotated, Any

import typer

from services.audit_cli import app as audit_app

# Each command imports what it needs when it runs: `slapay --help` and `slapay token issue`
# answer without loading the web stack.
SERVICES = ("ingest", "reviews", "ledger", "statements")
ROLES = ("admin", "agent", "customer", "provider", "auditor")

app = typer.Typer(
    help="slapay: payment that follows service levels and reviews.",
    no_args_is_help=True,
    add_completion=False,
)
token_app = typer.Typer(help="Tokens for the HTTP API.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="ingest, reviews, ledger or statements")],
    port: Annotated[
        int | None, typer.Option(envvar="SLAPAY_PORT", help="default: the service's own port")
    ] = None,
    host: Annotated[str | None, typer.Option(help="default: SLAPAY_HOST or 127.0.0.1")] = None,
) -> None:
    """Run one service (one process; distributed mode in containers)."""
    import uvicorn

    from shared.logging import configure_logging
    from shared.settings import DEFAULT_PORTS, ConfigurationError, Settings

    if service not in SERVICES:
        raise typer.BadParameter(f"service must be one of {', '.join(SERVICES)}")
    settings = Settings()
    try:
        settings.secret()
    except ConfigurationError as exc:
        typer.echo(f"slapay: {exc}", err=True)
        raise typer.Exit(2) from exc
    level = os.environ.get("SLAPAY_LOG_LEVEL", "warning")
    configure_logging(service, level, os.environ.get("SLAPAY_LOG_FORMAT"))
    try:
        application = import_module(f"services.{service}.bootstrap").bootstrap(settings)
    except ConfigurationError as exc:
        typer.echo(f"slapay: {exc}", err=True)
        raise typer.Exit(2) from exc
    if service == "ingest":  # measured there (docs/benchmarks.md); the fold settles its own
        from shared import heap

        heap.freeze_start_up()
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or DEFAULT_PORTS[service],
        log_level=level,
        log_config=None,  # keep the JSON, redacting handler configure_logging installed
    )


@app.command()
def run() -> None:
    """Start all four services in embedded mode; Ctrl-C stops them."""
    from shared.auth import issue_token
    from shared.settings import DEFAULT_PORTS, Settings

    settings = Settings()
    busy = [name for name in SERVICES if _port_taken(settings.host, DEFAULT_PORTS[name])]
    if busy:
        ports = ", ".join(f"{DEFAULT_PORTS[n]} ({n})" for n in busy)
        typer.echo(
            f"slapay: port(s) {ports} already in use on {settings.host}; "
            "is another slapay running?",
            err=True,
        )
        raise typer.Exit(1)
    fresh = not (settings.data_dir / "bus.db").exists() and settings.embedded
    secret = settings.secret()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    # their own session: Ctrl-C reaches only this process, which then stops them in order
    children = [subprocess.Popen(_serve_command(name), start_new_session=True) for name in SERVICES]
    try:
        urls = {name: f"http://{settings.host}:{DEFAULT_PORTS[name]}" for name in SERVICES}
        _wait_healthy(urls, children)
        for name, url in urls.items():
            typer.echo(f"  {name:<11} {url}   (docs: {url}/docs)")
        admin = issue_token(secret, "admin", ttl_days=1)
        if fresh and settings.demo:
            typer.echo(
                "Seeding the demo contract (last month of measurements and reviews, closed)..."
            )
            period = import_module("services.demo").seed_demo(
                urls["ledger"],
                urls["ingest"],
                admin,
                statements_url=urls["statements"],
                reviews_url=urls["reviews"],
            )
            typer.echo(
                f'  curl -H "Authorization: Bearer $TOKEN" '
                f"{urls['statements']}/v1/contracts/demo-hosting/statements/{period}"
            )
            typer.echo(f"  .venv/bin/slapay audit verify --contract demo-hosting --period {period}")
        typer.echo("An admin token:  export TOKEN=$(.venv/bin/slapay token issue --role admin)")
        typer.echo("Press Ctrl-C to stop.")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        exited = [
            f"{name} (exit code {child.returncode})"
            for name, child in zip(SERVICES, children, strict=True)
            if child.poll() is not None
        ]
        typer.echo(f"slapay: {', '.join(exited)} stopped; stopping the others", err=True)
    except KeyboardInterrupt:
        typer.echo("stopping...")
    finally:
        _stop(children)


def _serve_command(service: str) -> list[str]:
    """Each child on its own port, whatever SLAPAY_PORT says."""
    from shared.settings import DEFAULT_PORTS

    port = str(DEFAULT_PORTS[service])
    return [sys.executable, "-m", "services.cli", "serve", service, "--port", port]


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def _wait_healthy(urls: dict[str, str], children: list[subprocess.Popen[bytes]]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    pending = dict(urls)
    while pending:
        if any(child.poll() is not None for child in children):
            raise SystemExit("a service failed to start; see the messages above")
        if time.monotonic() > deadline:
            raise SystemExit(f"services not healthy after 60 s: {', '.join(pending)}")
        for name, url in list(pending.items()):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    del pending[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.2)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


@app.command("replay")
def replay(
    database_url: Annotated[
        str | None,
        typer.Option(help="fresh database for the rebuilt tables; default: a temp SQLite file"),
    ] = None,
) -> None:
    """Rebuild the ledger from the beginning of the bus; exit 0 only when every contract's
    chain head matches the live one."""
    from shared import eventloop, heap

    heap.settle()
    outcomes = eventloop.run(_replay(database_url))
    for o in outcomes:
        mark = "OK      " if o.matches else "MISMATCH"
        heads = f"live {o.live_head}, replayed {o.replayed_head}"
        typer.echo(f"{mark} {o.contract_id}: {o.entries} entries, {heads}")
    if not all(o.matches for o in outcomes):
        raise typer.Exit(1)


async def _replay(database_url: str | None) -> list[Any]:
    import tempfile

    from services.ledger import store
    from services.ledger.replay import replay as run_replay
    from shared import db
    from shared.bus.factory import create_bus
    from shared.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:
        engine = db.create_engine(database_url or f"sqlite+aiosqlite:///{scratch}/replay.db")
        bus = create_bus(Settings())
        await bus.start()
        try:
            await db.create_schema(engine, store.metadata)
            return await run_replay(bus, engine)
        finally:
            await bus.stop()
            await engine.dispose()


@app.command("catalogue")
def print_catalogue() -> None:
    """Print the JSON Schema catalogue of every event type."""
    import json

    from shared.catalogue import catalogue

    typer.echo(json.dumps(catalogue(), indent=2, sort_keys=True))


@token_app.command("issue")
def token_issue(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    contract: Annotated[
        list[str] | None, typer.Option(help="a contract the token may reach; repeat")
    ] = None,
    ttl_days: Annotated[float, typer.Option(help="days until it expires")] = 30,
) -> None:
    """Print a signed token (secret from SLAPAY_AUTH_SECRET or the data dir)."""
    from shared.auth import issue_token
    from shared.settings import ConfigurationError, Settings

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    try:
        secret = Settings().secret()
    except ConfigurationError as exc:
        typer.echo(f"slapay: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(issue_token(secret, role, contract or [], ttl_days))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
