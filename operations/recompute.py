"""``invoice --recompute``: one invoice built again from the log with ``domain.invoice``, and
compared byte for byte with the stored one.

The log is read as far as the invoices projection has applied it (its checkpoint), in the same
snapshot as the stored invoice, so a projection that is merely behind is not a difference; how
many of the account's events it has still to apply is reported beside the answer. The opening
balance is folded from the log itself, not taken from the previous invoice as the projection
does, so a wrong chain shows.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from activities.rows import STORED_EVENT, StoredEvent
from domain.account import balance_change
from domain.events import AccountCreated, CreditNoteIssued, InvoiceDrafted, InvoiceFinalized
from domain.invoice import AccountFacts, Invoice, Logged, canonical, compute_invoice, document
from projections import invoices
from projections.checkpoints import all_checkpoints
from projections.feed import START, FeedPosition


@dataclass(frozen=True)
class Recomputed:
    stored: Invoice
    computed: Invoice
    pending_events: int
    """The account's events that the projection has not applied yet."""

    @property
    def identical(self) -> bool:
        return canonical(self.stored) == canonical(self.computed)

    def difference(self) -> list[str]:
        """A unified diff of the two documents, pretty-printed (empty when identical)."""
        def pretty(invoice: Invoice) -> list[str]:
            return json.dumps(document(invoice), indent=2, sort_keys=True, ensure_ascii=False).splitlines()

        return list(difflib.unified_diff(pretty(self.stored), pretty(self.computed), "stored",
                                         "recomputed from the log", lineterm=""))


class NotProjected(LookupError):
    """The log drafted this invoice, but the projection has not applied it yet."""


async def recompute(conn: AsyncConnection[Any], stored: Invoice) -> Recomputed:
    """``stored`` built again from the log. ``conn`` should be in a REPEATABLE READ transaction
    that also read ``stored``."""
    at = {checkpoint.name: checkpoint.at for checkpoint in await all_checkpoints(conn)}
    checkpoint = at.get(invoices.NAME, START)
    cursor = await conn.execute(
        f"SELECT transaction_id::text, position, {STORED_EVENT} FROM account_events"
        " WHERE account_id = %s ORDER BY version", (stored.account_id,))
    applied: list[Logged] = []
    pending = 0
    for xid, position, *row in await cursor.fetchall():
        if FeedPosition(int(xid), position) > checkpoint:
            pending += 1
            continue
        event = StoredEvent(*row)
        applied.append(Logged(event.version, event.recorded_at, event.event()))
    return Recomputed(stored, _computed(stored.account_id, stored.sequence, applied), pending)


def _computed(account_id: str, sequence: int, log: list[Logged]) -> Invoice:
    drafted = next((e for e in log if isinstance(e.event, InvoiceDrafted) and e.event.sequence == sequence),
                   None)
    if drafted is None or not isinstance(drafted.event, InvoiceDrafted):
        raise NotProjected(f"account {account_id}: the log has no draft of invoice {sequence} "
                           "as far as the invoices projection has read it")
    first = drafted.event.first_version
    currency = next(e.event.currency for e in log if isinstance(e.event, AccountCreated))
    opening = sum(balance_change(e.event) for e in log if e.version < first)
    finalized = next((e for e in log if isinstance(e.event, InvoiceFinalized)
                      and e.event.sequence == sequence), None)
    notes = [e for e in log if isinstance(e.event, CreditNoteIssued) and e.event.invoice_sequence == sequence]
    return compute_invoice(AccountFacts(account_id, currency, opening), log, drafted, finalized, notes)
