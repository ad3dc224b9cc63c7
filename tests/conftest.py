from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests import infra


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """Bootstrap address of a Kafka-protocol broker shared by the session."""
    with infra.kafka_bootstrap() as bootstrap:
        yield bootstrap


@pytest.fixture
def fresh_kafka() -> Iterator[str]:
    """A broker of the test's own (tansu keeps topics in memory: nothing leaks between tests)."""
    with infra.kafka_bootstrap() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    return infra.postgres_admin_url()


@pytest.fixture
async def postgres_url(postgres_admin: str) -> AsyncIterator[str]:
    """A fresh database for one test, dropped afterwards."""
    url, name = await infra.create_database(postgres_admin)
    try:
        yield url
    finally:
        await infra.drop_database(postgres_admin, name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which real broker and database the integration tests ran against."""
    for part, used in infra.USED.items():
        for where in sorted(used):
            terminalreporter.write_line(f"integration {part}: {where}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """When pytest-timeout stops a hung test, say where each asyncio task was waiting:
    the thread stacks it prints only show the event loop's idle `select`."""
    report = yield
    if report.failed and call.excinfo and "from pytest-timeout" in str(call.excinfo.value):
        stacks = io.StringIO()
        for task in _unfinished_tasks():
            task.print_stack(limit=12, file=stacks)
        found = stacks.getvalue() or "none left (a teardown's tasks end with its loop)"
        report.sections.append(("asyncio tasks at the timeout", found))
    return report


def _unfinished_tasks() -> list[asyncio.Task[Any]]:
    """Every unfinished task of every loop. A fixture's teardown runs its loop only while it
    runs, so a timeout there finds no current loop (`all_tasks()` would raise, and pytest
    would stop the whole session on the error); asyncio's own registry of tasks still
    holds them."""
    registries = ("_all_tasks", "_scheduled_tasks", "_eager_tasks")  # CPython 3.11; 3.12 on
    found = {task for name in registries for task in list(getattr(asyncio.tasks, name, ()))}
    return [task for task in found if not task.done()]
