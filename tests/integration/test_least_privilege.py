"""Least privilege for real: the worker logs in as ``billing_worker``, which can append and read
events but can neither change them nor become anyone who could; the append-only trigger is a
second line that stops even the owner. And the worker refuses to serve as a role that could
change the log."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import activities.db as db
from activities.db import DatabaseNotReady, check_worker_database, open_pool
from devstack.postgres import WORKER, with_user
from tests.conftest import database_url

CHANGES = ["UPDATE account_events SET payload = '{}'", "DELETE FROM account_events",
           "TRUNCATE account_events"]
ESCAPES = [
    "ALTER TABLE account_events DISABLE TRIGGER account_events_append_only",
    "ALTER TABLE account_events DISABLE TRIGGER ALL",
    "DROP TRIGGER account_events_append_only ON account_events",
    "CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger LANGUAGE plpgsql"
    " AS $$ BEGIN RETURN OLD; END; $$",
    "ALTER TABLE account_events OWNER TO billing_worker",
    "DROP TABLE account_events",
    "SET session_replication_role = replica",  # would skip every trigger
    "SET ROLE billing_owner",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION billing_owner",
    "GRANT billing_owner TO billing_worker",
    "ALTER ROLE billing_worker SUPERUSER",
    "CREATE TABLE account_events_copy (id int)",
]


async def test_the_worker_logs_in_as_its_own_role_and_appends_and_reads(accounts_with_events,
                                                                        worker_db_url):
    async with await psycopg.AsyncConnection.connect(worker_db_url, autocommit=True) as conn:
        users = await (await conn.execute("SELECT session_user, current_user")).fetchone()
        assert users == (WORKER, WORKER)
        (count,) = await (await conn.execute("SELECT count(*) FROM account_events")).fetchone()
        assert count == 2  # written through the worker's pool by the fixture


async def test_the_worker_role_cannot_change_the_log_nor_become_the_owner(accounts_with_events,
                                                                           worker_db_url, db_url):
    async with await psycopg.AsyncConnection.connect(worker_db_url, autocommit=True) as conn:
        for _round in ("logged in", "after RESET ROLE"):
            for statement in CHANGES + ESCAPES:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute(statement)
            # RESET ROLE leads back to the login user, which is the worker itself.
            await conn.execute("RESET ROLE")
            assert (await (await conn.execute("SELECT current_user")).fetchone()) == (WORKER,)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        (count,) = await (await conn.execute("SELECT count(*) FROM account_events")).fetchone()
        triggers = await (await conn.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'account_events'::regclass"
            " AND NOT tgisinternal ORDER BY tgname")).fetchall()
    assert count == 2
    assert triggers == [("account_events_append_only", "O"), ("account_events_no_truncate", "O"),
                        ("account_events_notify", "O")]


async def test_set_role_alone_was_no_barrier(accounts_with_events, owner_db_url):
    """Why the worker has a login of its own: a session that only did SET ROLE billing_writer
    can RESET ROLE to its login user, the owner, and switch the append-only trigger off."""
    pool = open_pool(owner_db_url, role="billing_writer")
    async with pool, pool.connection() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(CHANGES[1])
        await conn.execute("RESET ROLE")
        async with conn.transaction(force_rollback=True):
            await conn.execute(ESCAPES[0])  # allowed: the owner may
            await conn.execute(CHANGES[1])
            (count,) = await (await conn.execute("SELECT count(*) FROM account_events")).fetchone()
            assert count == 0  # rolled back below
        await conn.execute("SET ROLE billing_writer")  # leave the pooled connection as it was


async def test_the_owner_is_stopped_by_the_append_only_trigger(accounts_with_events, db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for statement in CHANGES:
            with pytest.raises(psycopg.errors.RestrictViolation):
                await conn.execute(statement)
        (count,) = await (await conn.execute("SELECT count(*) FROM account_events")).fetchone()
        assert count == 2


# --- the worker's own check at start ---------------------------------------------------------


async def test_the_worker_role_passes_the_start_check(worker_db_url):
    await check_worker_database(worker_db_url)


@pytest.mark.parametrize("login, refusal", [("billing_owner", "owns the event log"),
                                            ("postgres", "is a superuser")])
async def test_a_role_that_could_change_the_log_is_refused(db_url, login, refusal):
    with pytest.raises(DatabaseNotReady, match=refusal):
        await check_worker_database(with_user(db_url, login))


async def test_the_legacy_set_role_passes_with_a_warning(owner_db_url, caplog):
    with caplog.at_level(logging.WARNING, logger="activities.db"):
        await check_worker_database(owner_db_url, role="billing_writer")
    assert "could RESET ROLE" in caplog.text


async def test_an_unmigrated_database_is_refused(pg_server_url):
    name = f"u_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with pytest.raises(DatabaseNotReady, match=r"never migrated.*BILLING_MIGRATION_URL"):
        await check_worker_database(with_user(database_url(pg_server_url, name), WORKER))


async def test_a_database_behind_the_code_is_refused(worker_db_url, tmp_path: Path, monkeypatch):
    for path in db.MIGRATIONS_DIR.glob("[0-9]*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "0099_later.sql").write_text("SELECT 1;")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path)
    with pytest.raises(DatabaseNotReady, match="migrations not applied: 0099_later"):
        await check_worker_database(worker_db_url)


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
