"""Reviews with a fake bus: rate limits, the burst detector, CSV import."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import InMemoryBus
from tests.service.test_reviews import (
    CONTRACT,
    PERIOD,
    SUMMARY,
    auth,
    bus,
    published,
    review,
    reviews_service,
)

__all__ = ["bus"]  # the fixture


async def test_rate_limits_answer_429_with_retry_after(tmp_path: Path, bus: InMemoryBus) -> None:
    async with reviews_service(tmp_path, bus, reviews_rate_per_minute=2) as client:
        customer = auth("customer")
        for who in ("a", "b"):
            assert (
                await client.post("/v1/reviews", json=review(who), headers=customer)
            ).status_code == 202
        limited = await client.post("/v1/reviews", json=review("c"), headers=customer)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        other_token = await client.post("/v1/reviews", json=review("c"), headers=auth("customer"))
        assert other_token.status_code == 202


async def test_one_token_sending_most_reviews_flags_the_period(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    settings = {"reviews_burst_min_reviews": 4, "reviews_burst_share": 0.5}
    async with reviews_service(tmp_path, bus, **settings) as client:
        busy = auth("customer")
        await client.post("/v1/reviews", json=review("x"), headers=auth("customer"))
        for who in ("a", "b", "c"):
            await client.post("/v1/reviews", json=review(who), headers=busy)
        summary = (await client.get(SUMMARY, headers=busy)).json()
    assert [f["kind"] for f in summary["flags"]] == ["burst"]
    assert summary["flags"][0]["share"] == 0.75
    assert [e.data["flags"] for e in published(bus)] == [[], [], [], ["burst"]]


async def test_csv_import_all_or_nothing(tmp_path: Path, bus: InMemoryBus) -> None:
    good = (
        "Reviewer,Rating,Comment,Submitted_At,communication,Extra\n"
        f'ann@x.test,5,"Great, really",{PERIOD}-03T09:00:00Z,4,zzz\n'
        f"bob@x.test,2,,{PERIOD}-04T09:00:00+02:00,,\n"
    )
    bad = (
        "reviewer,rating,comment,submitted_at\n"
        f"ann@x.test,5,fine,{PERIOD}-03T09:00:00Z\n"
        f"bob@x.test,seven,,{PERIOD}-04T09:00:00Z\n"
        ",3,,2026-10-04\n"
    )
    async with reviews_service(tmp_path, bus) as client:
        csv_headers = {**auth("customer"), "content-type": "text/csv"}
        path = f"/v1/contracts/{CONTRACT}/reviews:import"
        rejected = await client.post(path, content=bad.encode(), headers=csv_headers)
        assert rejected.status_code == 422, rejected.text
        assert rejected.json()["invalid_rows"] == [2, 3]
        assert "bob@x.test" not in rejected.text
        assert published(bus) == []
        accepted = await client.post(path, content=good.encode(), headers=csv_headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"imported": 2, "duplicates": 0, "ignored_columns": ["extra"]}
        again = await client.post(path, content=good.encode(), headers=csv_headers)
        assert again.json()["duplicates"] == 2
        provider = await client.post(
            path, content=good.encode(), headers={**auth("provider"), "content-type": "text/csv"}
        )
        assert provider.status_code == 403
        as_json = await client.post(path, json={}, headers=auth("customer"))
        assert as_json.status_code == 415
        summary = (await client.get(SUMMARY, headers=auth("provider"))).json()
    assert summary["count"] == 2 and summary["sources"] == {"import": 2}
    assert [e.source for e in published(bus)] == ["reviews:import"] * 2
