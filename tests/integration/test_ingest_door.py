"""The door on a real bus: ingest follows the contracts the ledger publishes, and refuses
what can never count (422 naming it) while a valid item of the same contract is accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.events import TOPIC_MEASUREMENTS
from tests.integration.seeded import agree, measurements, period_back, remote_write
from tests.system import System

pytestmark = pytest.mark.integration


async def test_a_typo_or_an_unknown_contract_is_refused_and_a_valid_item_accepted(
    system: System,
) -> None:
    await agree(system, "door-co", period_back(1))
    admin = system.token()
    before = len(await system.apps["ingest"].state.runtime.bus.read_all(TOPIC_MEASUREMENTS))

    typo = measurements("door-co", 1, "typo")
    typo["measurements"][0]["kpi"] = "availabilty"
    refused_typo = await system.ingest.post("/v1/measurements", json=typo, headers=admin)
    unknown = await system.ingest.post(
        "/v1/measurements", json=measurements("no-such-co", 1, "ghost"), headers=admin
    )
    too_early = measurements("door-co", 1, "early", datetime.now(UTC) - timedelta(days=100))
    refused_early = await system.ingest.post("/v1/measurements", json=too_early, headers=admin)
    accepted = await system.ingest.post(
        "/v1/measurements", json=measurements("door-co", 2, "fine"), headers=admin
    )
    conflicting = measurements("door-co", 1, "fine", value=0.5)
    conflict = await system.ingest.post("/v1/measurements", json=conflicting, headers=admin)
    remote_unknown = await system.ingest.post(
        "/v1/prometheus/write", **_with(remote_write("no-such-co"), admin)
    )

    for response, field, kind in (
        (refused_typo, "kpi", "kpi_unknown"),
        (unknown, "contract_id", "contract_unknown"),
        (refused_early, "observed_at", "before_effective_from"),
        (conflict, "measurement_id", "conflict"),
    ):
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["invalid_items"] == [0]
        assert [(e["loc"], e["type"]) for e in problem["errors"]] == [
            (["measurements", 0, field], kind)
        ]
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"accepted": 2, "duplicates": 0}
    assert remote_unknown.status_code == 422, remote_unknown.text
    after = await system.apps["ingest"].state.runtime.bus.read_all(TOPIC_MEASUREMENTS)
    assert len(after) - before == 2


async def test_an_oversized_item_leaves_nothing_on_the_bus(system: System) -> None:
    """Issue 19, case 5: 50 good measurements and one with a 1 MiB label."""
    await agree(system, "big-co", period_back(1))
    bus = system.apps["ingest"].state.runtime.bus
    before = len(await bus.read_all(TOPIC_MEASUREMENTS))
    batch = measurements("big-co", 51, "big")
    batch["measurements"][50]["labels"] = {"blob": "x" * (1024 * 1024)}
    for _ in range(3):  # as an agent following the protocol would retry
        response = await system.ingest.post("/v1/measurements", json=batch, headers=system.token())
        assert response.status_code == 422, response.text
        assert response.json()["invalid_items"] == [50]
    assert len(await bus.read_all(TOPIC_MEASUREMENTS)) == before


def _with(request: dict[str, object], headers: dict[str, str]) -> dict[str, object]:
    merged = dict(request)
    merged["headers"] = {**headers, **request["headers"]}  # type: ignore[dict-item]
    return merged
