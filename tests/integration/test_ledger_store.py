"""The ledger's measurement store on SQLite and on Postgres: each event id counts once,
whether it arrives twice in one batch, again in a later batch, or with new ones; running
aggregates and dirty marks add up across batches; a book lists closed periods, and their
statements are read one at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import journal_store, store
from services.ledger.book import open_books
from services.ledger.fold import rows as fold_rows
from services.ledger.fold.apply import apply_delivered  # its tables join `store.metadata` too
from shared import db
from shared.bus import Record
from shared.consuming import decode
from shared.events import TOPIC_MEASUREMENTS, MeasurementRecorded, make_event
from shared.measured import decode_measurements
from tests import infra

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    admin, name = "", ""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin")
        url, name = await infra.create_database(admin)
    engine = db.create_engine(url)
    await db.create_schema(engine, store.metadata)
    try:
        yield engine
    finally:
        await engine.dispose()
        if name:
            await infra.drop_database(admin, name)


def row(n: int, value: float | str = 1.0) -> store.MeasurementRow:
    return store.MeasurementRow(
        event_id=f"00000000-0000-0000-0000-{n:012d}",
        contract_id="acme-hosting",
        period="2026-10",
        kpi="latency_ms",
        value=str(value),
        occurred_at=datetime(2026, 10, 1, tzinfo=UTC),
        bus_partition=0,
        bus_offset=n,
    )


async def insert(engine: AsyncEngine, rows: list[store.MeasurementRow]) -> list[int]:
    async with engine.begin() as conn:
        new = await fold_rows.insert_new_measurements(conn, rows)
        await fold_rows.fold_aggregates(conn, new)
    return [r.bus_offset for r in new]


async def test_each_event_id_is_new_once(engine: AsyncEngine) -> None:
    assert await insert(engine, [row(1), row(2), row(1, value=99.0), row(3)]) == [1, 2, 3]
    # a redelivered batch with one new event: only that one is new (the fallback path)
    assert await insert(engine, [row(2), row(4), row(3), row(4)]) == [4]
    assert await insert(engine, [row(1), row(2)]) == []
    async with engine.connect() as conn:
        stored = await store.period_measurements(conn, "acme-hosting", "2026-10")
    assert [(r.bus_offset, r.number) for r in stored] == [(1, 1), (2, 1), (3, 1), (4, 1)]
    (aggregate,) = await store.aggregates(engine, "acme-hosting", "2026-10")
    assert (aggregate["count"], aggregate["total"]) == (4, 4.0)


async def test_the_kept_positions_are_the_highest_offsets_applied(engine: AsyncEngine) -> None:
    """A posting's cut is read from `applied_positions`, never lower than a row's offset
    (batches out of order, redeliveries, another partition); a contract with rows but no
    kept positions (applied before they were kept) has its rows read."""
    other = row(9)._replace(bus_partition=1, bus_offset=5)
    await insert(engine, [row(3), row(7), other])
    await insert(engine, [row(5), row(7)])  # a lower offset later, and a redelivery
    async with engine.connect() as conn:
        kept = await store.positions(conn, "acme-hosting")
    assert kept == {"0": {"offset": 7}, "1": {"offset": 5}}
    async with engine.begin() as conn:
        await conn.execute(store.applied_positions.delete())
    async with engine.connect() as conn:
        assert await store.positions(conn, "acme-hosting") == kept


async def test_a_refused_batch_leaves_nothing_behind(engine: AsyncEngine) -> None:
    """The fast path's savepoint must not leak rows when the transaction fails later."""
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await fold_rows.insert_new_measurements(conn, [row(1), row(2)])
            raise RuntimeError("the rest of the batch failed")
    assert await insert(engine, [row(1), row(2)]) == [1, 2]


async def test_a_refused_redelivery_leaves_nothing_behind(engine: AsyncEngine) -> None:
    """Same through the slow path (a batch with an event applied before), twice over."""
    assert await insert(engine, [row(1)]) == [1]
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await fold_rows.insert_new_measurements(conn, [row(1), row(2)])
            raise RuntimeError("the rest of the batch failed")
    assert await insert(engine, [row(1), row(2)]) == [2]
    assert await insert(engine, [row(2), row(3)]) == [3]


async def test_measurements_fold_alike_read_by_either_reader(engine: AsyncEngine) -> None:
    """`apply_delivered` folds a measurement given as an envelope exactly as one read by the
    fold's own reader (replay tools and tests may decode without it)."""

    def record(n: int, contract_id: str) -> Record:
        event = make_event(
            MeasurementRecorded(kpi="latency_ms", value=float(n)),
            contract_id=contract_id,
            source="test",
            producer_id=f"m-{n}",
            occurred_at=datetime(2026, 10, 1 + n, tzinfo=UTC),
        )
        headers = {"type": MeasurementRecorded.TYPE}
        return Record(TOPIC_MEASUREMENTS, 0, n, contract_id, event.to_json(), headers)

    fast, envelopes = (
        [record(n, "fast-co") for n in range(5)],
        [record(n, "slow-co") for n in range(5)],
    )
    await apply_delivered(engine, decode_measurements(fast).delivered, keyring=None)
    await apply_delivered(engine, decode(envelopes).delivered, keyring=None)
    fast_rows = await store.aggregates(engine, "fast-co", "2026-10")
    slow_rows = await store.aggregates(engine, "slow-co", "2026-10")
    assert [{**r, "contract_id": ""} for r in fast_rows] == [
        {**r, "contract_id": ""} for r in slow_rows
    ]
    assert fast_rows[0]["count"] == 5 and fast_rows[0]["total"] == 10.0


async def test_aggregates_and_dirty_marks_add_up_across_batches(engine: AsyncEngine) -> None:
    await insert(engine, [row(1, 5.0), row(2, -2.5), row(3, 7.0)])
    await insert(engine, [row(4, 9.5), row(5, -3.0)])
    [found] = await store.aggregates(engine, "acme-hosting", "2026-10")
    assert (found["count"], found["total"], found["minimum"], found["maximum"]) == (
        5,
        16.0,
        -3.0,
        9.5,
    )
    for _ in range(2):
        async with engine.begin() as conn:
            await store.mark_dirty(conn, {("acme-hosting", "2026-10"), ("other", "2026-09")})
    assert sorted(await store.dirty(engine)) == [
        ("acme-hosting", "2026-10", 2),
        ("other", "2026-09", 2),
    ]


async def test_books_list_closed_periods_and_statements_are_read_one_at_a_time(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        for period in ("2026-08", "2026-09"):
            statement = {"period": period, "lines": [], "total": "0.00"}
            await journal_store.record_close(
                conn, "acme-hosting", period, datetime(2026, 10, 5, tzinfo=UTC), {}, statement
            )
    async with engine.connect() as conn:
        books = await open_books(conn, ["acme-hosting", "nobody"])
        assert books["acme-hosting"].closed == {"2026-08", "2026-09"}
        assert books["nobody"].closed == set()
        final = await journal_store.final_statement(conn, "acme-hosting", "2026-09")
        assert final == {"period": "2026-09", "lines": [], "total": "0.00"}
        assert await journal_store.final_statement(conn, "acme-hosting", "2026-10") is None
