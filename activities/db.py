"""Postgres plumbing: the connection pool, the migration runner, and the worker's check that
its database is ready for it.

Migrations are the numbered ``*.sql`` files in ``migrations/``, applied in order, each once, by
the role that owns the tables (``BILLING_MIGRATION_URL``). The runner holds a transaction-level
advisory lock, so two workers starting at once apply them exactly once between them: the second
waits, then finds nothing left to do. The worker itself logs in as a role that can only read and
append (``billing_worker``, migration 0003), and refuses to serve as one that could change the
event log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_LOCK = 7_233_000_001  # any constant; shared by every process that migrates this database
CONNECT_TIMEOUT = 10  # seconds; libpq would otherwise wait for as long as TCP does

log = logging.getLogger(__name__)


def pending_migrations(applied: set[str]) -> list[Path]:
    """The migration files not yet applied, in the order they must run."""
    return [path for path in sorted(MIGRATIONS_DIR.glob("[0-9]*.sql")) if path.stem not in applied]


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations in one transaction; return the names applied."""
    async with await psycopg.AsyncConnection.connect(
            database_url, connect_timeout=CONNECT_TIMEOUT) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
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

    With ``role``, every connection does ``SET ROLE role`` first (the legacy way to least
    privilege, ``BILLING_DB_ROLE``: the session can ``RESET ROLE`` to its login user). The
    worker logs in as a role of its own instead (``billing_worker``, migration 0003).
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


class DatabaseNotReady(RuntimeError):
    """The database is not migrated as far as this code needs, or the worker's role could
    change the event log: the message says what to do. Waiting would not help."""


_LOG_POWERS = """
SELECT current_user, session_user, r.rolsuper, pg_has_role(c.relowner, 'MEMBER'),
       has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'),
       has_table_privilege(c.oid, 'TRUNCATE')
  FROM pg_class c JOIN pg_roles r ON r.rolname = current_user
 WHERE c.oid = 'account_events'::regclass
"""
_MIGRATE_HINT = ("run them as the owner of the tables: BILLING_MIGRATION_URL=<the owner's URL> "
                 "python worker.py --migrate (or give the worker BILLING_MIGRATION_URL)")


async def check_worker_database(database_url: str, *, role: str | None = None) -> None:
    """Raise ``DatabaseNotReady`` unless every migration in ``migrations/`` is applied and the
    worker's role (the login user, or ``role`` after ``SET ROLE``) can neither change, own nor
    become the owner of ``account_events``. Connection errors are raised as they are."""
    async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        if role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        try:
            applied = {name for (name,) in await (await conn.execute(
                "SELECT name FROM schema_migrations")).fetchall()}
        except psycopg.errors.UndefinedTable:
            raise DatabaseNotReady(f"the database was never migrated; {_MIGRATE_HINT}") from None
        except psycopg.errors.InsufficientPrivilege:
            raise DatabaseNotReady("the worker's role may not read schema_migrations: migration "
                                   f"0003 is not applied; {_MIGRATE_HINT}") from None
        missing = [path.stem for path in pending_migrations(applied)]
        if missing:
            raise DatabaseNotReady(f"migrations not applied: {', '.join(missing)}; {_MIGRATE_HINT}")
        row = await (await conn.execute(_LOG_POWERS)).fetchone()
    assert row is not None  # account_events exists once 0001 is applied
    user, session_user, superuser, owner, *changes = row
    powers = [power for power, held in zip(("UPDATE", "DELETE", "TRUNCATE"), changes, strict=True) if held]
    if superuser or owner or powers:
        what = ("is a superuser" if superuser else
                "owns the event log (account_events) or may become its owner" if owner else
                f"may {'/'.join(powers)} the event log (account_events)")
        raise DatabaseNotReady(
            f"the worker's database role {user} {what}; give the worker a login of its own that "
            "may only read and append (billing_worker, migration 0003) in DATABASE_URL, and the "
            "owner's URL in BILLING_MIGRATION_URL")
    if session_user != user:
        log.warning("the worker logs in as %s and runs as %s (BILLING_DB_ROLE): its session could "
                    "RESET ROLE; give it a login of its own (billing_worker)", session_user, user)
