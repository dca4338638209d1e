"""The gap-safe feed: with concurrent writers, every committed event is delivered exactly once,
in an order where nothing can appear behind a checkpoint; a naive ``position > last seen``
reader skips events. New events wake a listener.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import psycopg
import pytest

from domain.events import FundsAdded
from projections import feed
from projections.feed import START, FeedPosition

pytestmark = pytest.mark.asyncio


async def _insert(conn: psycopg.AsyncConnection, account_id: str, version: int) -> int:
    """Insert one event (inside the caller's transaction); return its position."""
    cursor = await conn.execute(
        "INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id)"
        " VALUES (%s, %s, %s, 'FUND_ADDED', '{\"amount\": 1, \"description\": \"\"}', %s)"
        " RETURNING position", (uuid.uuid4(), account_id, version, f"c-{uuid.uuid4()}"))
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def _naive(conn: psycopg.AsyncConnection, after: int) -> list[int]:
    cursor = await conn.execute("SELECT position FROM account_events WHERE position > %s"
                                " ORDER BY position", (after,))
    return [row[0] for row in await cursor.fetchall()]


async def test_an_earlier_position_committed_later_is_skipped_by_a_naive_reader_not_by_the_feed(db_url):
    async with await psycopg.AsyncConnection.connect(db_url) as first, \
            await psycopg.AsyncConnection.connect(db_url) as second, \
            await psycopg.AsyncConnection.connect(db_url, autocommit=True) as reader:
        early = await _insert(first, "a", 1)  # position taken, not yet committed
        late = await _insert(second, "b", 1)
        await second.commit()
        naive_seen = await _naive(reader, 0)
        feed_seen = await feed.read(reader, START)
        await first.commit()
        naive_after = await _naive(reader, max(naive_seen))
        feed_after = await feed.read(reader, feed.last(feed_seen) if feed_seen else START)

    assert early < late
    assert naive_seen == [late] and naive_after == []  # the naive reader never sees `early`
    assert feed_seen == []  # held back while the older transaction is in flight
    assert [e.at.position for e in feed_after] == [early, late]


async def test_concurrent_writers_every_event_is_delivered_exactly_once(db_url):
    rng = random.Random(7)
    writers, per_writer = 8, 25
    committed: list[int] = []
    done = asyncio.Event()

    async def write(index: int) -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            for version in range(1, per_writer + 1):
                position = await _insert(conn, f"w{index}", version)
                await asyncio.sleep(rng.uniform(0, 0.02))  # commit out of position order
                await conn.commit()
                committed.append(position)

    async def follow() -> tuple[list[int], list[int]]:
        delivered: list[int] = []
        naive: list[int] = []
        at, naive_at = START, 0
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            while True:
                finished = done.is_set()
                events = await feed.read(conn, at, 50)
                delivered += [e.at.position for e in events]
                at = feed.last(events) if events else at
                seen = await _naive(conn, naive_at)
                naive += seen
                naive_at = max(seen, default=naive_at)
                if finished and not events:
                    return delivered, naive
                await asyncio.sleep(0.001)

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(write(index) for index in range(writers)))
    done.set()
    delivered, naive = await follower

    assert sorted(delivered) == sorted(committed)  # every one
    assert len(delivered) == len(set(delivered)) == writers * per_writer  # once
    assert len(set(naive)) < len(committed), "the naive reader should have skipped some"


async def test_the_feed_orders_by_transaction_then_position(db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        async with conn.transaction():
            two = [await _insert(conn, "t", 1), await _insert(conn, "t", 2)]
        events = await feed.read(conn, START)
        again = await feed.read(conn, feed.last(events))

    assert [e.at.position for e in events] == two and again == []
    assert events[0].at.transaction_id == events[1].at.transaction_id
    assert events[0].at < events[1].at < FeedPosition(events[1].at.transaction_id + 1, 0)
    assert events[1].event == FundsAdded(command_id=events[1].stored.command_id or "", amount=1)


async def test_a_new_event_wakes_a_listener(db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener, \
            await psycopg.AsyncConnection.connect(db_url, autocommit=True) as writer:
        await feed.listen(listener)
        assert not await feed.wait(listener, 0.2)  # nothing yet
        waiting = asyncio.create_task(feed.wait(listener, 30))
        await asyncio.sleep(0.1)
        await _insert(writer, "n", 1)
        assert await asyncio.wait_for(waiting, 30)


async def test_transaction_ids_are_ordered_as_numbers_not_as_text(db_url):
    """Across a power of ten (999 -> 1000) the text of a transaction id sorts the wrong way."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        first = await _insert(conn, "x", 1)
        cursor = await conn.execute("SELECT pg_current_xact_id()::text")
        xid = int((await cursor.fetchone())[0])
        boundary = 10 ** len(str(xid))
        assert boundary - xid < 100_000, "too far from the next power of ten to burn ids to it"
        for _ in range(boundary - xid):
            await conn.execute("SELECT pg_current_xact_id()")  # each in a transaction of its own
        second = await _insert(conn, "x", 2)
        events = await feed.read(conn, START)
        after_first = await feed.read(conn, events[0].at)

    assert len(str(events[1].at.transaction_id)) > len(str(events[0].at.transaction_id))
    assert [e.at.position for e in events] == [first, second]
    assert [e.at.position for e in after_first] == [second]
