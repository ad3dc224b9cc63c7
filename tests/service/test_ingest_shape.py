"""A body of the wrong shape is told the shape it should have, not "0 invalid item(s)"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.events import TOPIC_MEASUREMENTS
from tests.fakes import InMemoryBus
from tests.service.test_ingest import AGENT, batch, ingest

SHAPE = 'expected an object {"measurements": [...]}'


@pytest.mark.parametrize(
    "body",
    [batch("a")["measurements"], {"items": batch("a")["measurements"]}, {"measurements": []}],
    ids=["a bare list", "another key", "no items"],
)
async def test_a_body_without_items_to_name_is_told_the_shape(tmp_path: Path, body: Any) -> None:
    bus = InMemoryBus()
    async with ingest(tmp_path, bus) as client:
        response = await client.post("/v1/measurements", json=body, headers=AGENT)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"].startswith(SHAPE)
    assert problem["invalid_items"] == []
    assert problem["errors"]
    assert bus.topics[TOPIC_MEASUREMENTS] == []


async def test_bad_items_are_still_counted_and_named(tmp_path: Path) -> None:
    body = batch("a", "b")
    body["measurements"][1]["kpi"] = ""
    async with ingest(tmp_path, InMemoryBus()) as client:
        response = await client.post("/v1/measurements", json=body, headers=AGENT)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "1 invalid item(s); nothing was published"
    assert response.json()["invalid_items"] == [1]
