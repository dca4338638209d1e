"""Shadow tables: where a replay rebuilds projections while the live ones keep serving, and the
atomic swap that puts them in place.

A shadow is ``<table>__replay``, made ``LIKE`` its live table (columns, defaults, constraints,
indexes). The swap renames the live table away and the shadow in, copies the live table's
grants, and drops the old one, all in the caller's transaction: readers see the old tables or
the new ones, never a half-built one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection, sql

from projections.base import Projection
from projections.checkpoints import PAUSE_RUNNERS

SUFFIX = "__replay"


def shadows(projections: Iterable[Projection]) -> dict[str, str]:
    """Each table of ``projections`` -> its shadow."""
    return {table: table + SUFFIX for projection in projections for table in projection.tables}


async def create(conn: AsyncConnection[Any], projections: Iterable[Projection]) -> None:
    """Empty shadows of every table, made afresh."""
    for live, shadow in shadows(projections).items():
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(shadow)))
        await conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
            sql.Identifier(shadow), sql.Identifier(live)))


async def drop(conn: AsyncConnection[Any], projections: Iterable[Projection]) -> None:
    for shadow in shadows(projections).values():
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(shadow)))


async def lock_live(conn: AsyncConnection[Any], projections: Iterable[Projection]) -> None:
    """Stop the runners' steps and every writer of the live tables (appends write ``accounts``)
    until the caller's transaction ends. Takes no transaction id, so the feed is not held up."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PAUSE_RUNNERS,))
    tables = sql.SQL(", ").join(sql.Identifier(live) for live in shadows(projections))
    await conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(tables))


async def swap(conn: AsyncConnection[Any], projections: Iterable[Projection]) -> None:
    """Put the shadows in place of the live tables, with the live tables' grants."""
    for live, shadow in shadows(projections).items():
        retired = sql.Identifier(live + "__retired")
        await conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(live), retired))
        await conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            sql.Identifier(shadow), sql.Identifier(live)))
        await _copy_grants(conn, live + "__retired", live)
        await conn.execute(sql.SQL("DROP TABLE {}").format(retired))


async def _copy_grants(conn: AsyncConnection[Any], source: str, target: str) -> None:
    cursor = await conn.execute(
        "SELECT grantee, privilege_type FROM information_schema.table_privileges"
        " WHERE table_schema = current_schema() AND table_name = %s"
        " AND grantee <> (SELECT tableowner FROM pg_tables WHERE tablename = %s"
        "                 AND schemaname = current_schema())", (source, source))
    for grantee, privilege in await cursor.fetchall():
        await conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(privilege), sql.Identifier(target), sql.Identifier(grantee)))
