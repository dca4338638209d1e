"""Postgres plumbing: the connection pool and the migration runner.

Migrations are the numbered ``*.sql`` files in ``migrations/``, applied in order, each once.
The runner holds a transaction-level advisory lock, so two workers starting at once apply them
exactly once between them: the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_LOCK = 7_233_000_001  # any constant; shared by every process that migrates this database

log = logging.getLogger(__name__)


def pending_migrations(applied: set[str]) -> list[Path]:
    """The migration files not yet applied, in the order they must run."""
    return [path for path in sorted(MIGRATIONS_DIR.glob("[0-9]*.sql")) if path.stem not in applied]


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations in one transaction; return the names applied."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT name FROM schema_migrations")
        applied = {name for (name,) in await cursor.fetchall()}
        names = []
        for path in pending_migrations(applied):
            await conn.execute(path.read_text())
            await conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.stem,))
            names.append(path.stem)
    for name in names:
        log.info("applied migration %s", name)
    return names


def open_pool(database_url: str, *, role: str | None = None, max_size: int = 8) -> AsyncConnectionPool:
    """An unopened pool of autocommit connections; ``await pool.open()`` before use.

    With ``role``, every connection does ``SET ROLE role`` first, so the worker's queries run
    with only the privileges migration 0002 grants (append and read events, never change them).
    """

    async def least_privilege(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role or "")))

    return AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True},
        configure=least_privilege if role else None,
        open=False,
        name="billing",
    )
