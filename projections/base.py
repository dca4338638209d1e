"""What a projection is: a name, the tables it owns, and ``apply``, which folds a chunk of feed
events into those tables.

``apply`` gets the events in feed order, each account's in version order, and writes through
``tables``, which maps each table's name to the one to write: the live table, or its shadow
while a replay rebuilds it (``operations/replay``). The caller owns the transaction: the live
runner commits the writes with the checkpoint's advance, a replay with its progress.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from psycopg import AsyncConnection, sql

from projections.feed import FeedEvent

Tables = Mapping[str, str]
"""Table name -> the table to write (itself, or its shadow)."""


class Projection(Protocol):
    name: str
    tables: tuple[str, ...]
    """The tables it owns, first the one that says whether it has rows at all."""

    async def apply(self, conn: AsyncConnection[Any], events: Sequence[FeedEvent],
                    tables: Tables) -> None: ...


def live(projection: Projection) -> dict[str, str]:
    """The projection's own tables."""
    return {table: table for table in projection.tables}


def table(tables: Tables, name: str) -> sql.Identifier:
    return sql.Identifier(tables.get(name, name))
