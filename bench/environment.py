"""Fresh real parts for each repeat: a tansu broker, a Postgres database, service processes.

The broker and the database come from the integration tests' `tests/infra.py`; where they
are missing, the scenario is skipped with the reason instead of failing the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from bench.core import BenchError, Unavailable
from tests import infra

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "x" * 40
READY_TIMEOUT_S = 60.0


@contextlib.contextmanager
def _as_unavailable() -> Iterator[None]:
    try:
        yield
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        raise Unavailable(str(exc)) from exc


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """Bootstrap address of a fresh in-memory tansu broker."""
    with contextlib.ExitStack() as stack:
        with _as_unavailable():
            bootstrap = stack.enter_context(infra.tansu_broker())
        yield bootstrap


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """SQLAlchemy URL of a fresh, empty Postgres database, dropped afterwards."""
    with _as_unavailable():
        admin = infra.postgres_admin_url()
    try:
        url, name = await infra.create_database(admin)
    except OSError as exc:
        raise Unavailable(f"Postgres at {admin}: {exc}") from exc
    try:
        yield url
    finally:
        await infra.drop_database(admin, name)


async def quiet_postgres(url: str, timeout_s: float = 60.0) -> None:
    """Let the server finish what the previous step left it (dirty buffers, autovacuum of
    the tables it filled) before the next step is timed, so that no side pays for another's
    writes: on two cores, a step run right after the eventsourcing peer measured up to a
    fifth slower than one run first."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ):
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def server_env(settings: dict[str, str]) -> dict[str, str]:
    """This environment without any `SLAPAY_*` of the caller's, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    env.update({f"SLAPAY_{name.upper()}": value for name, value in settings.items()})
    env["SLAPAY_AUTH_SECRET"] = SECRET
    env["SLAPAY_LOG_LEVEL"] = os.environ.get("SLAPAY_LOG_LEVEL", "warning")
    return env


@contextlib.contextmanager
def _spawned(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def server(
    service: str, settings: dict[str, str], workdir: Path, name: str | None = None
) -> AsyncIterator[str]:
    """`slapay serve <service>` on a free port with these settings; yields its base URL once
    `/readyz` answers 200. Its output goes to `workdir/<name or service>.log`."""
    port = infra.free_port()
    args = [sys.executable, "-m", "services.cli", "serve", service, "--port", str(port)]
    log = workdir / f"{name or service}.log"
    with _spawned(args, server_env(settings), log) as process:
        base_url = f"http://127.0.0.1:{port}"
        await _wait_ready(base_url, process, log)
        yield base_url


async def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(f"{log.stem} exited with {process.returncode}: {_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise BenchError(f"{log.stem} not ready within {READY_TIMEOUT_S:.0f}s: {_tail(log)}")


def _tail(log: Path, size: int = 2000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else "(no output)"
