"""The worker's role can append and read events but never change them; the trigger is a
second line that stops even the owner."""

from __future__ import annotations

import psycopg
import pytest

from activities.db import open_pool

CHANGES = ["UPDATE account_events SET payload = '{}'", "DELETE FROM account_events",
           "TRUNCATE account_events"]


async def test_worker_role_may_append_and_read_but_not_change_events(accounts_with_events, db_url):
    pool = open_pool(db_url, role="billing_writer")
    async with pool, pool.connection() as conn:
        (role,) = await (await conn.execute("SELECT current_user")).fetchone()
        assert role == "billing_writer"
        (count,) = await (await conn.execute("SELECT count(*) FROM account_events")).fetchone()
        assert count == 2
        for statement in CHANGES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(statement)


async def test_the_owner_is_stopped_by_the_append_only_trigger(accounts_with_events, db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for statement in CHANGES:
            with pytest.raises(psycopg.errors.RestrictViolation):
                await conn.execute(statement)
        (count,) = await (await conn.execute("SELECT count(*) FROM account_events")).fetchone()
        assert count == 2


@pytest.fixture
async def accounts_with_events(worker_pool):
    """One account with two events, written through the worker's own (least-privilege) pool."""
    from uuid import uuid4

    from activities.contracts import AppendEvents, NewEvent
    from activities.event_store import EventStore
    from domain.events import AccountCreated, FundsAdded

    events = [AccountCreated(account_id="lp", currency="USD"), FundsAdded(command_id="f1", amount=5)]
    await EventStore(worker_pool).append_events(AppendEvents(
        account_id="lp", expected_version=0, balance=5, status="open", currency="USD",
        overdraft_limit=0, events=[NewEvent(event_id=uuid4(), event=e) for e in events]))
