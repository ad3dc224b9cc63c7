"""Statements runs each verification in a process of its own, a bounded number at once.

The job here is a stand-in that holds its process until the test lets it go: requests that
come meanwhile show what the service does while a verification runs, whatever it checks.
The real check is covered in `tests/integration/test_verification.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from services.statements.bootstrap import bootstrap
from services.statements.verification import Checked, Outcome
from shared.auth import issue_token
from shared.settings import Settings
from tests.system import SECRET, make_settings

CONTRACT = "acme-2026"
VERIFY = f"/v1/contracts/{CONTRACT}/statements/2026-09/verify"
PATIENCE_S = 120.0


def held_until_released(settings: Settings, contract_id: str, period: str) -> Outcome:
    """A verification that ends once the file `release` appears in the data dir, and
    leaves the id of the process it ran in beside it."""
    (settings.data_dir / f"ran-in-{os.getpid()}").touch()
    while not (settings.data_dir / "release").exists():
        time.sleep(0.02)
    return Checked([], 0, 0, [])


def ran_in(data_dir: Path) -> set[str]:
    """The processes the held jobs ran in."""
    return {path.name.removeprefix("ran-in-") for path in data_dir.glob("ran-in-*")}


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, 'auditor', [CONTRACT])}"}


@contextlib.asynccontextmanager
async def statements(tmp_path: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = bootstrap(make_settings(data_dir=tmp_path, **settings), verify_job=held_until_released)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client,
    ):
        yield client


async def test_beyond_the_bound_a_verification_is_refused_with_429(tmp_path: Path) -> None:
    async with statements(tmp_path, verify_concurrency=1) as client:
        first, second = (asyncio.create_task(client.get(VERIFY, headers=auth())) for _ in "ab")
        done, _ = await asyncio.wait(
            {first, second}, timeout=PATIENCE_S, return_when="FIRST_COMPLETED"
        )
        [refused] = [task.result() for task in done]
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["status"] == 429
        held = second if first in done else first
        assert not held.done()
        (tmp_path / "release").touch()
        answered = await asyncio.wait_for(held, PATIENCE_S)
        assert answered.status_code == 200, answered.text
        assert answered.json()["verified"] is True


async def test_requests_are_answered_while_a_verification_holds_its_process(
    tmp_path: Path,
) -> None:
    """The held job would stop the event loop if it ran on it: then nothing below could
    be answered before the release."""
    async with statements(tmp_path) as client:
        verifying = [asyncio.create_task(client.get(VERIFY, headers=auth())) for _ in range(3)]
        while len(ran_in(tmp_path)) < 3:  # all three are running
            await asyncio.sleep(0.02)
            assert not any(task.done() for task in verifying)
        health = await client.get("/healthz")
        statement = await client.get(f"/v1/contracts/{CONTRACT}/statements/2026-09", headers=auth())
        assert health.status_code == 200
        assert statement.status_code == 404  # answered: this service holds no statement yet
        assert not any(task.done() for task in verifying)
        assert str(os.getpid()) not in ran_in(tmp_path)
        (tmp_path / "release").touch()
        answers = await asyncio.wait_for(asyncio.gather(*verifying), PATIENCE_S)
        assert [a.status_code for a in answers] == [200, 200, 200]
