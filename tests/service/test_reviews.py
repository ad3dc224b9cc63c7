"""Reviews with a fake bus: 202 only once published, auth, replacement, erasure, limits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.reviews.bootstrap import bootstrap
from shared.auth import issue_token
from shared.bus import Record
from shared.events import TOPIC_REVIEWS, Envelope, TermsAgreed, make_event
from shared.publishing import publish_events
from tests.fakes import InMemoryBus, InMemoryConsumer
from tests.system import SECRET, eventually, make_settings

CONTRACT = "acme-2026"
_LAST_MONTH = datetime.now(UTC).replace(day=1) - timedelta(days=1)
PERIOD = f"{_LAST_MONTH.year:04d}-{_LAST_MONTH.month:02d}"
SUMMARY = f"/v1/contracts/{CONTRACT}/reviews?period={PERIOD}"


def auth(role: str, contracts: tuple[str, ...] = (CONTRACT,)) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, role, list(contracts))}"}


def terms(trim_percent: float = 0) -> dict[str, Any]:
    return {
        "contract_id": CONTRACT,
        "provider": "Hosting Co",
        "customer": "Acme GmbH",
        "currency": "EUR",
        "base_fee": "1000.00",
        "effective_from": PERIOD,
        "timezone": "Europe/Berlin",
        "kpis": [],
        "reviews": {
            "min_reviews": 3,
            "max_bonus_percent": 5,
            "max_penalty_percent": 5,
            "trim_percent": trim_percent,
        },
    }


def review(reviewer: str, rating: int = 4, comment: str | None = None, **extra: Any) -> dict:
    return {
        "contract_id": CONTRACT,
        "reviewer": reviewer,
        "rating": rating,
        "dimensions": {"communication": rating, "usefulness": 3, "reliability": 5},
        "comment": comment,
        "occurred_at": f"{PERIOD}-10T12:00:00Z",
        **extra,
    }


class PoliteConsumer(InMemoryConsumer):
    """`InMemoryConsumer` that waits when there is nothing new, as the real adapters do
    (the fake returns at once, so a consumer loop would never yield to the event loop)."""

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        records = await super().fetch(max_records, timeout_s)
        await asyncio.sleep(0 if records else 0.01)
        return records


class FakeBus(InMemoryBus):
    def consumer(self, topics: Sequence[str], group: str) -> InMemoryConsumer:
        return PoliteConsumer(self, list(topics))


@contextlib.asynccontextmanager
async def reviews_service(
    tmp_path: Path, bus: InMemoryBus, agreed: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The reviews service on `bus`, once it knows the contract's terms (`agreed`, or
    `terms()`)."""
    app = bootstrap(make_settings(data_dir=tmp_path, **settings), bus=bus)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        event = make_event(
            TermsAgreed(version=1, terms=agreed or terms()),
            contract_id=CONTRACT,
            source="admin:test",
        )
        await publish_events(bus, [event])
        admin = auth("admin", ())
        await eventually(lambda: client.get(SUMMARY, headers=admin), lambda r: r.status_code == 200)
        yield client


@pytest.fixture
def bus() -> InMemoryBus:
    return FakeBus()


def published(bus: InMemoryBus, type_: str = "review.submitted") -> list[Envelope]:
    events = [Envelope.from_json(r.value) for r in bus.topics[TOPIC_REVIEWS]]
    return [e for e in events if e.type == type_]


async def test_a_review_is_published_pseudonymous_and_encrypted(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with reviews_service(tmp_path, bus) as client:
        body = review("  Alice@Example.COM ", comment="Quick answers, sometimes terse.")
        response = await client.post("/v1/reviews", json=body, headers=auth("customer"))
        assert response.status_code == 202, response.text
        reply = response.json()
        assert reply["period"] == PERIOD
        again = await client.post(
            "/v1/reviews", json=review("alice@example.com", 2), headers=auth("customer")
        )
        assert again.json()["reviewer_pseudonym"] == reply["reviewer_pseudonym"]
    (event, replacement) = published(bus)
    assert event.contract_id == CONTRACT and event.source == "reviews:api"
    assert event.occurred_at.isoformat() == f"{PERIOD}-10T12:00:00+00:00"
    assert event.data["review_id"] == reply["review_id"]
    assert event.data["reviewer_pseudonym"] == reply["reviewer_pseudonym"]
    assert event.data["rating"] == 4 and event.data["flags"] == []
    assert event.data["comment_ciphertext"] and event.data["key_id"]
    raw = b"".join(r.value for r in bus.topics[TOPIC_REVIEWS]).lower()
    assert b"alice" not in raw and b"terse" not in raw
    assert replacement.data["comment_ciphertext"] is None


async def test_the_period_is_the_month_in_the_contracts_timezone(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    year, month = int(PERIOD[:4]), int(PERIOD[5:])
    last_day = (datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC) - timedelta(days=1)).day
    async with reviews_service(tmp_path, bus) as client:
        late_evening = review("a", occurred_at=f"{PERIOD}-{last_day}T23:30:00Z")  # Berlin: next day
        moved = await client.post("/v1/reviews", json=late_evening, headers=auth("customer"))
        assert moved.json()["period"] > PERIOD
        undated = {k: v for k, v in review("b").items() if k != "occurred_at"}
        now = datetime.now(ZoneInfo("Europe/Berlin"))
        dated_now = await client.post("/v1/reviews", json=undated, headers=auth("customer"))
        assert dated_now.json()["period"] == f"{now.year:04d}-{now.month:02d}"


async def test_nothing_is_accepted_while_the_bus_is_down(tmp_path: Path, bus: InMemoryBus) -> None:
    async with reviews_service(tmp_path, bus) as client:
        bus.down = True
        refused = await client.post("/v1/reviews", json=review("a"), headers=auth("customer"))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/problem+json"
        bus.down = False
        summary = (await client.get(SUMMARY, headers=auth("auditor"))).json()
        assert summary["count"] == 0


async def test_who_may_do_what(tmp_path: Path, bus: InMemoryBus) -> None:
    async with reviews_service(tmp_path, bus) as client:
        body = review("a")
        for role, status in [("provider", 403), ("agent", 403), ("admin", 202)]:
            assert (
                await client.post("/v1/reviews", json=body, headers=auth(role))
            ).status_code == (status)
        other = auth("customer", ("someone-else",))
        assert (await client.post("/v1/reviews", json=body, headers=other)).status_code == 404
        assert (await client.get(SUMMARY, headers=other)).status_code == 404
        assert (await client.get(SUMMARY, headers=auth("agent"))).status_code == 403
        assert (await client.get(SUMMARY)).status_code == 401
        unknown = review("a", contract_id="no-such-contract")
        admitted = auth("customer", ("no-such-contract",))
        assert (await client.post("/v1/reviews", json=unknown, headers=admitted)).status_code == 404
        erase = await client.delete("/v1/reviewers/" + "0" * 64, headers=auth("customer"))
        assert erase.status_code == 403
        assert (
            await client.delete("/v1/reviewers/" + "0" * 64, headers=auth("admin", ()))
        ).status_code == 404
        assert (
            await client.delete("/v1/reviewers/x", headers=auth("admin", ()))
        ).status_code == 422


@pytest.mark.parametrize(
    "change",
    [
        {"rating": 6},
        {"rating": 0},
        {"rating": 4.5},
        {"rating": "4"},
        {"reviewer": "   "},
        {"comment": "x" * 5001},
        {"dimensions": {"communication": 1, "usefulness": 2}},
        {"dimensions": {"communication": 1, "usefulness": 2, "reliability": 9}},
        {"occurred_at": f"{PERIOD}-10T12:00:00"},
        {"occurred_at": "2999-01-01T00:00:00Z"},
        {"unexpected": True},
    ],
)
async def test_invalid_reviews_are_422_and_publish_nothing(
    tmp_path: Path, bus: InMemoryBus, change: dict[str, Any]
) -> None:
    async with reviews_service(tmp_path, bus) as client:
        response = await client.post(
            "/v1/reviews", json={**review("a"), **change}, headers=auth("customer")
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        malformed = await client.post(
            "/v1/reviews",
            content=b'{"rating": ',
            headers={**auth("customer"), "content-type": "application/json"},
        )
        assert malformed.status_code == 400
    assert published(bus) == []


async def test_a_second_review_replaces_the_first_and_comments_wait_for_three(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with reviews_service(tmp_path, bus) as client:
        customer = auth("customer")
        for who, rating, at in [("a", 1, "10"), ("a", 5, "12"), ("b", 4, "11")]:
            body = review(who, rating, comment=f"{who} says {rating}")
            body["occurred_at"] = f"{PERIOD}-{at}T08:00:00Z"
            assert (
                await client.post("/v1/reviews", json=body, headers=customer)
            ).status_code == 202
        two = (await client.get(SUMMARY, headers=customer)).json()
        assert (two["count"], two["submissions"], two["replaced"]) == (2, 3, 1)
        assert two["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}
        assert two["mean"] == 4.5
        assert two["comments"] is None and two["comments_hidden"] == "fewer_than_3_reviewers"
        await client.post("/v1/reviews", json=review("c", 3, comment="c ok"), headers=customer)
        three = (await client.get(SUMMARY, headers=auth("provider"))).json()
        assert three["count"] == 3 and three["counts_for_payment"]
        assert three["comments"] == [
            {"rating": 3, "comment": "c ok"},
            {"rating": 4, "comment": "b says 4"},
            {"rating": 5, "comment": "a says 5"},
        ]
        assert three["dimensions"]["communication"] == {"mean": 4.0, "count": 3}
        for outsider in ("auditor", "admin"):
            shown = (await client.get(SUMMARY, headers=auth(outsider))).json()
            assert shown["comments"] is None and shown["comments_hidden"] == "parties_only"
        text = str(three)
        assert "reviewer_pseudonym" not in text and "review_id" not in text


async def test_erasure_destroys_comments_but_ratings_still_count(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with reviews_service(tmp_path, bus) as client:
        customer = auth("customer")
        aliases = []
        for who in ("a", "b", "c"):
            body = review(who, comment=f"secret words of {who}")
            aliases.append((await client.post("/v1/reviews", json=body, headers=customer)).json())
        gone = aliases[0]["reviewer_pseudonym"]
        erased = await client.delete(f"/v1/reviewers/{gone}", headers=auth("admin", ()))
        assert erased.status_code == 204
        summary = (await client.get(SUMMARY, headers=customer)).json()
        assert summary["count"] == 3
        assert [c["comment"] for c in summary["comments"]] == [
            "secret words of b",
            "secret words of c",
        ]
        assert (
            await client.delete(f"/v1/reviewers/{gone}", headers=auth("admin", ()))
        ).status_code == 204
    (notice, *_) = published(bus, "reviewer.erased")
    assert notice.contract_id == CONTRACT
    assert notice.data == {"reviewer_pseudonym": gone}


async def test_a_review_ahead_of_our_clock_is_refused_past_the_configured_skew(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    """The same `max_clock_skew_s` as ingest, for the API and for CSV imports."""
    ahead = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    csv = f"reviewer,rating,comment,submitted_at\ncarol@x.test,4,,{ahead}\n".encode()
    importing = {**auth("customer"), "Content-Type": "text/csv"}
    url = f"/v1/contracts/{CONTRACT}/reviews:import"
    async with reviews_service(tmp_path, bus, max_clock_skew_s=60) as client:
        refused = await client.post(
            "/v1/reviews", json=review("bob@x.test", occurred_at=ahead), headers=auth("customer")
        )
        assert refused.status_code == 422, refused.text
        assert "60 s ahead of our clock" in refused.json()["detail"]
        refused_csv = await client.post(url, content=csv, headers=importing)
        assert refused_csv.status_code == 422, refused_csv.text
        assert "ahead of our clock" in refused_csv.text
    async with reviews_service(tmp_path / "default", bus) as client:
        accepted = await client.post(
            "/v1/reviews", json=review("bob@x.test", occurred_at=ahead), headers=auth("customer")
        )
        assert accepted.status_code == 202, accepted.text
        imported = await client.post(url, content=csv, headers=importing)
        assert imported.status_code == 202, imported.text
