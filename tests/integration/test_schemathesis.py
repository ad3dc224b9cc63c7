"""Schemathesis against each service's own OpenAPI, over real HTTP with an admin token and
the services' tables in Postgres: no 5xx, no dropped connection, and every response conforms
to the schema (status, content type, body, headers). Its hooks (`schemathesis_hooks.py`) mix
in values at the edge: years 1 and 9999, offsets of ±14:00, ±1e308, control and
percent-encoded bytes in path parameters.

Bounded per service (`SLAPAY_SCHEMATHESIS_SECONDS`, default 20 s); the seed is fixed so a
failure reproduces, and `SLAPAY_SCHEMATHESIS_SEED` picks another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.settings import SERVICES
from tests import infra
from tests.integration.test_agents_common import serve_over_http
from tests.system import System, make_settings, running_system

pytestmark = pytest.mark.integration
SECONDS = os.environ.get("SLAPAY_SCHEMATHESIS_SECONDS", "20")
SEED = os.environ.get("SLAPAY_SCHEMATHESIS_SEED", "20261127")
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
CHECKS += ",response_headers_conformance"
NOT_GENERATED = ("/v1/prometheus/write",)  # snappy protobuf: schemathesis cannot write it
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


@pytest.fixture(scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory, postgres_admin: str
) -> AsyncIterator[tuple[System, dict[str, str]]]:
    if importlib.util.find_spec("schemathesis") is None:
        infra.unavailable("schemathesis", "pip install schemathesis (make test installs it)")
    url, database = await infra.create_database(postgres_admin)
    settings = make_settings(data_dir=tmp_path_factory.mktemp("schemathesis"), database_url=url)
    try:
        async with running_system(settings) as system:
            urls = {}
            async with contextlib.AsyncExitStack() as stack:
                for name in SERVICES:
                    app = system.apps[name]
                    urls[name] = await stack.enter_async_context(serve_over_http(app))
                yield system, urls
    finally:
        await infra.drop_database(postgres_admin, database)


@pytest.mark.parametrize("service", SERVICES)
async def test_the_api_keeps_its_schema_and_never_fails_with_5xx(
    served: tuple[System, dict[str, str]], service: str
) -> None:
    system, urls = served
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{urls[service]}/openapi.json",
        "--header",
        f"Authorization: {system.token()['Authorization']}",
        "--checks",
        CHECKS,
        "--max-time",
        SECONDS,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--suppress-health-check",
        "all",
        "--generation-database",
        "none",
        "--no-color",
        *(arg for path in NOT_GENERATED for arg in ("--exclude-path", path)),
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")[-6000:]
