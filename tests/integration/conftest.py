from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import infra
from tests.system import System, make_settings, running_system


@pytest.fixture(params=["embedded", "kafka+postgres"])
async def system(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[System]:
    """The four services on either bus: SQLite + SQL log, or Kafka + Postgres."""
    if request.param == "embedded":
        async with running_system(make_settings(data_dir=tmp_path)) as running:
            yield running
        return
    admin = request.getfixturevalue("postgres_admin")
    url, name = await infra.create_database(admin)
    try:
        with infra.kafka_bootstrap() as bootstrap:
            bus = f"kafka://{bootstrap}"
            settings = make_settings(data_dir=tmp_path, bus=bus, database_url=url)
            async with running_system(settings) as running:
                yield running
    finally:
        await infra.drop_database(admin, name)
