"""Final statements are signed by the ledger; the published keys verify them, online and
offline (`slapay audit verify-signature`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from shared import signing
from tests.infra import free_port
from tests.integration.test_ledger import CONTRACT, setup_closed_september
from tests.system import System

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """`app` (already started by the system) over real HTTP on a free loopback port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def published_keys(system: System) -> dict[str, Any]:
    ledger = await system.ledger.get(signing.KEYS_PATH)
    statements = await system.statements.get(signing.KEYS_PATH)
    assert ledger.status_code == statements.status_code == 200
    assert ledger.headers["content-type"] == "application/json"
    assert ledger.json() == statements.json()  # one key set, served by both services
    document: dict[str, Any] = ledger.json()
    return document


async def signature_cli(statement: Path, *keys: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "services.cli", "audit", "verify-signature", str(statement)]
    return await asyncio.to_thread(
        subprocess.run,
        [*command, *keys],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_final_statement_carries_a_signature_the_published_keys_verify(
    system: System,
) -> None:
    final = await setup_closed_september(system, up=995)
    assert final["parties"] == {"provider": "Hosting Co", "customer": "Acme GmbH"}
    jwks = await published_keys(system)
    assert [k["status"] for k in jwks["keys"]] == ["active"]
    keys = signing.keys_from_jwks(jwks)
    assert signing.verify(final, keys) == jwks["keys"][0]["kid"]  # disputes: [] is not signed
    with pytest.raises(signing.SignatureInvalid):
        signing.verify({**final, "total": "10000.00"}, keys)
    # The ledger's own record of the close holds the same signed document.
    runtime = system.apps["ledger"].state.runtime
    from services.ledger import journal_store

    async with runtime.engine.connect() as conn:
        closed = await journal_store.final_statement(conn, CONTRACT, "2026-09")
    assert closed is not None and closed["signature"] == final["signature"]


async def test_verify_signature_offline_with_a_key_file_or_the_keys_url(
    system: System, tmp_path: Path
) -> None:
    final = await setup_closed_september(system, up=995)
    statement = tmp_path / "statement.json"
    statement.write_text(json.dumps(final))
    keys = tmp_path / "slapay-keys.json"
    keys.write_text(json.dumps(await published_keys(system)))
    ok = await signature_cli(statement, "--keys", str(keys))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"OK: {CONTRACT} 2026-09 total 9000.00 signed by key")
    async with served(system.apps["statements"]) as url:
        online = await signature_cli(statement, "--keys", url + signing.KEYS_PATH)
    assert online.returncode == 0, online.stdout + online.stderr
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**final, "total": "1.00"}))
    failed = await signature_cli(forged, "--keys", str(keys))
    assert failed.returncode == 1
    assert "FAILED" in failed.stderr and "does not match" in failed.stderr
    unusable = await signature_cli(statement, "--keys", str(tmp_path / "missing.json"))
    assert unusable.returncode == 2
