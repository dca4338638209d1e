"""The billing activities: gapless document numbers, and what the log says of a charge that a
refund names. Each call is one transaction; asking again gives the same answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from temporalio import activity

from domain.account import refund_problem
from domain.commands import ChargeFacts, RefundCharge


class NumberRequest(BaseModel):
    """A number for the document ``kind`` (invoice, credit_note) of ``account_id`` named
    ``key`` (the invoice's sequence, the refund's command id), in the series of ``year``."""

    account_id: str
    kind: str
    key: str
    year: int


class FactsRequest(BaseModel):
    account_id: str
    refund: RefundCharge
    year: int
    may_number: bool = True
    """False when the account refuses the refund anyway: then no credit note number is taken."""


class BillingActivities:
    """The billing activities, bound to one pool and the deployment's number prefixes."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, invoice_prefix: str = "INV-",
                 credit_note_prefix: str = "CN-") -> None:
        self._pool = pool
        self._prefixes = {"invoice": invoice_prefix, "credit_note": credit_note_prefix}

    @activity.defn(name="allocate_number")
    async def allocate_number(self, request: NumberRequest) -> str:
        """The document's number: the next of its series, or the one it was given already."""
        async with self._pool.connection() as conn:
            return await _allocate(conn, request, self._prefixes[request.kind])

    @activity.defn(name="charge_facts")
    async def charge_facts(self, request: FactsRequest) -> ChargeFacts:
        """What the log says of the charge the refund names, and, when that charge's invoice is
        final and the refund can be applied, the number of the credit note it calls for."""
        async with self._pool.connection() as conn:
            facts = await _facts(conn, request.account_id, request.refund.charge_id)
            refund = request.refund.model_copy(update={"facts": facts})
            if not request.may_number or facts.invoice_number is None or refund_problem(refund) is not None:
                return facts
            note = NumberRequest(account_id=request.account_id, kind="credit_note",
                                 key=request.refund.command_id, year=request.year)
            if await _key_used(conn, request.account_id, request.refund.command_id):
                # The same refund again (its note keeps its number), or another command's key,
                # which the account will refuse: a new number here would leave a gap.
                number = await _allocated(conn, note)
            else:
                number = await _allocate(conn, note, self._prefixes["credit_note"])
            return facts.model_copy(update={"credit_note_number": number})

    @property
    def activities(self) -> list[Callable[..., Any]]:
        return [self.allocate_number, self.charge_facts]


async def _allocate(conn: AsyncConnection[Any], request: NumberRequest, prefix: str) -> str:
    series = f"{prefix}{request.year}"
    for _ in range(2):  # a second try finds the number a concurrent first one committed
        if (found := await _allocated(conn, request)) is not None:
            return found
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO document_series (series) VALUES (%s)"
                                   " ON CONFLICT (series) DO NOTHING", (series,))
                cursor = await conn.execute("UPDATE document_series SET last = last + 1"
                                            " WHERE series = %s RETURNING last", (series,))
                row = await cursor.fetchone()
                assert row is not None
                formatted = f"{series}-{row[0]:06d}"
                await conn.execute(
                    "INSERT INTO document_numbers (series, number, account_id, kind, key, formatted)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (series, row[0], request.account_id, request.kind, request.key, formatted))
            return formatted
        except errors.UniqueViolation:
            continue  # rolled back, the counter with it: no number skipped
    raise RuntimeError(f"no number for {request}")


async def _allocated(conn: AsyncConnection[Any], request: NumberRequest) -> str | None:
    cursor = await conn.execute("SELECT formatted FROM document_numbers WHERE account_id = %s"
                                " AND kind = %s AND key = %s",
                                (request.account_id, request.kind, request.key))
    row = await cursor.fetchone()
    return row[0] if row else None


async def _key_used(conn: AsyncConnection[Any], account_id: str, command_id: str) -> bool:
    cursor = await conn.execute("SELECT 1 FROM account_events WHERE account_id = %s"
                                " AND command_id = %s LIMIT 1", (account_id, command_id))
    return await cursor.fetchone() is not None


_FACTS = """
WITH charge AS (
    SELECT version, (payload->>'amount')::bigint AS amount FROM account_events
     WHERE account_id = %(account)s AND command_id = %(charge)s AND event_type = 'CHARGE_APPLIED'),
refunded AS (
    SELECT coalesce(sum((payload->>'amount')::bigint), 0) AS amount FROM account_events
     WHERE account_id = %(account)s AND event_type = 'REFUND_APPLIED'
       AND payload->>'charge_id' = %(charge)s),
invoice AS (  -- the finalized invoice whose versions cover the charge
    SELECT (d.payload->>'sequence')::int AS sequence, f.payload->>'number' AS number
      FROM charge
      JOIN account_events d ON d.account_id = %(account)s AND d.event_type = 'INVOICE_DRAFTED'
       AND charge.version BETWEEN (d.payload->>'first_version')::bigint
                              AND (d.payload->>'last_version')::bigint
      JOIN account_events f ON f.account_id = %(account)s AND f.event_type = 'INVOICE_FINALIZED'
       AND f.payload->>'sequence' = d.payload->>'sequence')
SELECT charge.version, charge.amount, refunded.amount, invoice.sequence, invoice.number
  FROM charge CROSS JOIN refunded LEFT JOIN invoice ON true
"""


async def _facts(conn: AsyncConnection[Any], account_id: str, charge_id: str) -> ChargeFacts:
    cursor = await conn.execute(_FACTS, {"account": account_id, "charge": charge_id})
    row = await cursor.fetchone()
    if row is None:
        return ChargeFacts()
    version, amount, refunded, sequence, number = row
    return ChargeFacts(version=version, amount=amount, refunded=refunded,
                       invoice_sequence=sequence, invoice_number=number)
