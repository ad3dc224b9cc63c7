from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

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
