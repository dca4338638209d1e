"""The billing calls of ``AccountClient``: refunds and closing a billing period, sent through
``AccountTransport`` (errors translated, a finished workflow revived)."""

from __future__ import annotations

from client.commands import or_new, validated
from client.transport import AccountTransport
from domain.commands import RefundCharge
from workflows.interface import CLOSE_PERIOD, CommandOutcome, PeriodClosed


class BillingCalls(AccountTransport):
    """Refund a charge, close a billing period."""

    async def refund(self, account_id: str, amount: int, *, charge_id: str,
                     command_id: str | None = None, description: str = "",
                     currency: str | None = None, wait: bool = True) -> CommandOutcome | None:
        """Give back ``amount`` minor units of the earlier charge ``charge_id`` (its command id),
        as the ``refund`` update (or, with ``wait=False``, signal). A refund of an unknown
        charge, or of more than is left of it, raises ``CommandRejectedError``; when the charge's
        invoice is final, the account issues a credit note with it."""
        command = validated(RefundCharge, command_id=or_new(command_id), charge_id=charge_id,
                            amount=amount, description=description, currency=currency)
        return await self.send_one(account_id, command, wait=wait)

    async def close_period(self, account_id: str) -> PeriodClosed:
        """End the account's running billing period now (the ``close_period`` update): its
        invoice is drafted and finalized, and any draft still in its grace period too. The
        answer names no invoice when the period had just begun, or the account is closed (its
        workflow, if finished, is revived from the log to answer)."""
        return await self._update(account_id, CLOSE_PERIOD, None, PeriodClosed)
