"""Reviews that cannot be bought, with a fake bus: who may submit and import (403), the
reviewer cap (422), and the admin's release of a held review line."""

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
    terms,
)

__all__ = ["bus"]  # the fixture
IMPORT = f"/v1/contracts/{CONTRACT}/reviews:import"
RELEASE = f"/v1/contracts/{CONTRACT}/reviews/{PERIOD}/release"


def csv(*reviewers: str, day: int = 3) -> bytes:
    rows = [f"{who},5,,{PERIOD}-{day:02d}T09:00:00Z" for who in reviewers]
    return "\n".join(["reviewer,rating,comment,submitted_at", *rows, ""]).encode()


def capped(max_reviewers: int) -> dict[str, object]:
    agreed = terms()
    return {**agreed, "reviews": {**agreed["reviews"], "max_reviewers": max_reviewers}}


async def test_a_provider_token_may_neither_submit_nor_import(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with reviews_service(tmp_path, bus) as client:
        provider = auth("provider")
        submitted = await client.post("/v1/reviews", json=review("a"), headers=provider)
        imported = await client.post(
            IMPORT, content=csv("a", "b"), headers={**provider, "content-type": "text/csv"}
        )
        for refused in (submitted, imported):
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "provider" in refused.json()["detail"]
        assert published(bus) == []
        for role in ("customer", "admin"):
            allowed = await client.post(
                IMPORT, content=csv(f"{role}-x"), headers={**auth(role), "content-type": "text/csv"}
            )
            assert allowed.status_code == 202, allowed.text
        assert (
            await client.post("/v1/reviews", json=review("z"), headers=auth("admin"))
        ).is_success
    assert len(published(bus)) == 3


async def test_a_reviewer_past_the_cap_is_refused_and_a_counted_one_may_replace(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with reviews_service(tmp_path, bus, agreed=capped(2)) as client:
        customer = auth("customer")
        for who in ("a", "b"):
            ok = await client.post("/v1/reviews", json=review(who), headers=customer)
            assert ok.status_code == 202, ok.text
        third = await client.post("/v1/reviews", json=review("c"), headers=customer)
        assert third.status_code == 422, third.text
        assert third.headers["content-type"] == "application/problem+json"
        problem = third.json()
        assert "at most 2 distinct reviewers" in problem["detail"]
        assert "may replace their review" in problem["detail"]
        assert problem["errors"][0]["loc"] == ["body", "reviewer"]
        replaced = await client.post("/v1/reviews", json=review("a", 1), headers=customer)
        assert replaced.status_code == 202, replaced.text
        headers = {**customer, "content-type": "text/csv"}
        refused = await client.post(IMPORT, content=csv("b", "d", "e"), headers=headers)
        assert refused.status_code == 422, refused.text
        assert refused.json()["invalid_rows"] == [2, 3]
        assert "at most 2 distinct reviewers" in refused.text
        summary = (await client.get(SUMMARY, headers=customer)).json()
    assert summary["count"] == 2 and summary["submissions"] == 3
    assert summary["max_reviewers"] == 2
    assert len(published(bus)) == 3


async def test_an_admin_releases_a_held_line_once_per_burst(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    settings = {"reviews_burst_min_reviews": 3, "reviews_burst_share": 0.5}
    async with reviews_service(tmp_path, bus, **settings) as client:
        admin = auth("admin", ())
        nothing = await client.post(RELEASE, headers=admin)
        assert nothing.status_code == 409, nothing.text
        assert nothing.headers["content-type"] == "application/problem+json"
        customer = auth("customer")
        for who in ("a", "b", "c"):
            await client.post("/v1/reviews", json=review(who), headers=customer)
        assert [f["kind"] for f in (await client.get(SUMMARY, headers=admin)).json()["flags"]] == [
            "burst"
        ]
        for role in ("customer", "provider", "auditor"):
            assert (await client.post(RELEASE, headers=auth(role))).status_code == 403
        first = await client.post(RELEASE, headers=admin)
        again = await client.post(RELEASE, headers=admin)
        assert first.status_code == again.status_code == 202, first.text
        assert first.json() == again.json()
        assert first.json()["period"] == PERIOD
        await client.post("/v1/reviews", json=review("d"), headers=customer)  # flagged again
        renewed = await client.post(RELEASE, headers=admin)
        bad_period = await client.post(
            f"/v1/contracts/{CONTRACT}/reviews/2026-13/release", headers=admin
        )
        assert bad_period.status_code == 422
    releases = published(bus, "review.line.released")
    assert [str(e.event_id) for e in releases] == [first.json()["release_id"]] * 2 + [
        renewed.json()["release_id"]
    ]
    assert renewed.json()["release_id"] != first.json()["release_id"]
    assert releases[0].data["period"] == PERIOD and releases[0].contract_id == CONTRACT
