"""The migration runner against a real Postgres: each migration once, even when two run at once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import activities.db as db
from activities.db import migrate, pending_migrations
from tests.conftest import database_url

MIGRATION_NAMES = [path.stem for path in sorted(db.MIGRATIONS_DIR.glob("[0-9]*.sql"))]


@pytest.fixture
def empty_db_url(pg_server_url: str):
    """A brand-new database with no schema at all (not cloned from the migrated template).

    Not dropped afterwards, like ``db_url``'s: DROP DATABASE forces a checkpoint, which can take
    seconds while other tests write; the server's data dir is temporary anyway."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(pg_server_url, name)


def applied_names(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {name for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}


def test_the_repository_has_the_event_store_migration():
    assert MIGRATION_NAMES[0] == "0001_event_store"
    assert [p.stem for p in pending_migrations(set())] == MIGRATION_NAMES
    assert pending_migrations(set(MIGRATION_NAMES)) == []


async def test_migrate_applies_everything_once_and_then_nothing(empty_db_url):
    assert await migrate(empty_db_url) == MIGRATION_NAMES
    assert await migrate(empty_db_url) == []

    assert applied_names(empty_db_url) == MIGRATION_NAMES
    assert {"accounts", "account_events", "schema_migrations"} <= tables(empty_db_url)


async def test_the_per_test_database_is_already_migrated(db_url):
    assert await migrate(db_url) == []
    assert applied_names(db_url) == MIGRATION_NAMES


async def test_two_concurrent_migrations_apply_exactly_once(empty_db_url):
    results = await asyncio.gather(migrate(empty_db_url), migrate(empty_db_url))

    assert sorted(results, key=len) == [[], MIGRATION_NAMES]
    assert applied_names(empty_db_url) == MIGRATION_NAMES


async def test_a_failing_migration_applies_nothing(empty_db_url, tmp_path: Path, monkeypatch):
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE bad (id int); SELEC 1;")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path)

    with pytest.raises(psycopg.errors.SyntaxError):
        await migrate(empty_db_url)

    assert tables(empty_db_url) == set()  # not even schema_migrations: one transaction


async def test_migrations_run_in_numeric_order_and_later_ones_are_picked_up(
        empty_db_url, tmp_path: Path, monkeypatch):
    (tmp_path / "0002_second.sql").write_text("ALTER TABLE first ADD COLUMN extra int;")
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first (id int);")
    (tmp_path / "notes.sql").write_text("this is not a migration")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path)
    assert await migrate(empty_db_url) == ["0001_first", "0002_second"]

    (tmp_path / "0003_third.sql").write_text("CREATE TABLE third (id int);")
    assert await migrate(empty_db_url) == ["0003_third"]
    assert applied_names(empty_db_url) == ["0001_first", "0002_second", "0003_third"]
