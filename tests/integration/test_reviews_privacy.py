"""Submit → summary → erase on both buses; the plaintext is nowhere, before or after.

"Nowhere" is every database (each file under the data dir in embedded mode; every table,
dumped with SQL, on Postgres), every bus topic, and every log line and captured output.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from services.reviews import crypto
from shared.events import ALL_TOPICS, TOPIC_REVIEWS, Envelope
from tests.system import System, eventually

pytestmark = pytest.mark.integration
CONTRACT = "privacy-test"
_last_month = datetime.now(UTC).replace(day=1) - timedelta(days=1)
PERIOD = f"{_last_month.year:04d}-{_last_month.month:02d}"
REVIEWER = "Margarethe.Quill@Customer.example"
COMMENT = "Zebra-quartz lullaby: the on-call engineer fixed it at 3 a.m."
OTHERS = [("ole@customer.example", 2, "Slow replies."), ("ivy@customer.example", 4, "Solid.")]
NEEDLES = [REVIEWER, REVIEWER.casefold(), "Zebra-quartz", "lullaby"]


def terms() -> dict[str, Any]:
    return {
        "contract_id": CONTRACT,
        "provider": "Hosting Co",
        "customer": "Customer AG",
        "currency": "EUR",
        "base_fee": "1000.00",
        "effective_from": PERIOD,
        "kpis": [
            {
                "name": "availability",
                "aggregation": "mean",
                "objective": ">=",
                "target": 0.99,
                "credits": [{"breach": 0.99, "percent": 10}],
            }
        ],
        "reviews": {"min_reviews": 3, "max_bonus_percent": 5, "max_penalty_percent": 5},
    }


def body(reviewer: str, rating: int, comment: str, day: int) -> dict[str, Any]:
    return {
        "contract_id": CONTRACT,
        "reviewer": reviewer,
        "rating": rating,
        "dimensions": {"communication": rating, "usefulness": rating, "reliability": rating},
        "comment": comment,
        "occurred_at": f"{PERIOD}-{day:02d}T10:00:00Z",
    }


def files_under(data_dir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(data_dir.rglob("*")) if path.is_file()]


async def everything_stored(system: System, data_dir: Path) -> dict[str, bytes]:
    """Every byte the system keeps: files under the data dir and Postgres tables (the
    databases), and every record of every topic (the bus)."""
    files = files_under(data_dir)
    engine = system.apps["reviews"].state.runtime.engine
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            tables = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
            for (table,) in tables.all():
                rows = await conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" AS t'))
                files += [row[0].encode() for row in rows]
    records = []
    bus = system.apps["reviews"].state.runtime.bus
    for topic in ALL_TOPICS:
        for record in await bus.read_all(topic):
            records += [record.key.encode(), record.value, repr(record.headers).encode()]
    return {"databases": b"\n".join(files), "bus": b"\n".join(records)}


def assert_nowhere(stored: dict[str, bytes], logs: str, alias: str) -> None:
    for where, haystack in stored.items():
        assert alias.encode() in haystack, f"the search does not reach the {where}"
        for needle in NEEDLES:
            assert needle.encode() not in haystack, f"{needle!r} is in the {where}"
            assert needle.encode().hex().encode() not in haystack, f"{needle!r} (hex) in {where}"
    for needle in NEEDLES:
        assert needle not in logs, f"{needle!r} was logged"


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    records = [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
    return "\n".join([caplog.text, *records, captured.out, captured.err])


async def test_submit_summarise_erase_leaves_no_plaintext(
    system: System,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    reviews, admin = system.clients["reviews"], system.token()
    customer = system.token("customer", [CONTRACT])
    assert (
        await system.ledger.post("/v1/contracts", json=terms(), headers=admin)
    ).status_code == 201
    summary_path = f"/v1/contracts/{CONTRACT}/reviews?period={PERIOD}"
    await eventually(
        lambda: reviews.get(summary_path, headers=admin), lambda r: r.status_code == 200
    )

    first = await reviews.post("/v1/reviews", json=body(REVIEWER, 5, COMMENT, 3), headers=customer)
    assert first.status_code == 202, first.text
    alias = first.json()["reviewer_pseudonym"]
    for day, (who, rating, words) in enumerate(OTHERS, start=4):
        answer = await reviews.post(
            "/v1/reviews", json=body(who, rating, words, day), headers=customer
        )
        assert answer.status_code == 202, answer.text

    shown = (await reviews.get(summary_path, headers=customer)).json()
    assert shown["count"] == 3 and shown["mean"] == pytest.approx(11 / 3)
    assert COMMENT in [c["comment"] for c in shown["comments"]]
    assert_nowhere(await everything_stored(system, tmp_path), logged(caplog, capfd), alias)

    looked_up = await reviews.post(
        "/v1/reviewers:pseudonym",
        json={"contract_id": CONTRACT, "reviewer": REVIEWER.upper()},
        headers=admin,
    )
    assert looked_up.json() == {"reviewer_pseudonym": alias}
    assert (await reviews.delete(f"/v1/reviewers/{alias}", headers=admin)).status_code == 204
    purge_warnings = [r for r in caplog.records if "after an erasure" in r.getMessage()]
    assert purge_warnings == [], "VACUUM FULL / the WAL checkpoint did not run cleanly"

    after = (await reviews.get(summary_path, headers=customer)).json()
    assert after["count"] == 3 and after["mean"] == shown["mean"]
    assert sorted(c["comment"] for c in after["comments"]) == ["Slow replies.", "Solid."]
    assert_nowhere(await everything_stored(system, tmp_path), logged(caplog, capfd), alias)
    await assert_unrecoverable(system, alias)
    await ratings_still_count(system)


async def assert_unrecoverable(system: System, alias: str) -> None:
    """No key the reviews database still holds opens the erased reviewer's ciphertext."""
    runtime = system.apps["reviews"].state.runtime
    events = [Envelope.from_json(r.value) for r in await runtime.bus.read_all(TOPIC_REVIEWS)]
    (sealed_event,) = [
        e for e in events if e.type == "review.submitted" and e.data["reviewer_pseudonym"] == alias
    ]
    assert any(
        e.type == "reviewer.erased" and e.data["reviewer_pseudonym"] == alias for e in events
    )
    sealed = crypto.Sealed(
        sealed_event.data["comment_ciphertext"], sealed_event.data["comment_nonce"]
    )
    context = crypto.comment_context(CONTRACT, alias, sealed_event.data["review_id"])
    kek = system.apps["reviews"].state.reviews_config.kek
    async with runtime.engine.connect() as conn:
        held = (await conn.execute(text("SELECT key_id, wrapped_key FROM reviews_data_keys"))).all()
    assert sealed_event.data["key_id"] not in {key_id for key_id, _ in held}
    assert held, "the other reviewers keep their keys"
    for key_id, wrapped in held:
        with pytest.raises(crypto.Unreadable):
            crypto.open_sealed(crypto.unwrap_key(kek, bytes(wrapped), key_id), sealed, context)


async def ratings_still_count(system: System) -> None:
    """The ledger's review line still uses all three ratings after the erasure."""

    async def review_line() -> dict[str, Any] | None:
        response = await system.statements.get(
            f"/v1/contracts/{CONTRACT}/statements/{PERIOD}",
            headers=system.token("auditor", [CONTRACT]),
        )
        if response.status_code != 200:
            return None
        return next((x for x in response.json()["lines"] if x["kind"] == "review_adjustment"), None)

    line = await eventually(review_line, lambda x: x is not None and x["derivation"]["events"] == 3)
    assert line["derivation"]["value"] == pytest.approx(11 / 3)
