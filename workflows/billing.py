"""How the account workflow bills: its periods end on durable timers, each end drafts an
invoice, the grace period after it finalizes the invoice under a gapless number; a refund is
decided with what the log says of its charge. A mixin of ``AccountWorkflow``."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities, FactsRequest, NumberRequest
    from domain.account import Decision, refused_by_the_account
    from domain.commands import ChargeFacts, Command, DraftInvoice, FinalizeInvoice, RefundCharge
    from domain.periods import BillingPeriod
    from domain.state import AccountState, AccountStatus
    from workflows.interface import AccountWorkflowInput, PeriodClosed
    from workflows.run_length import RunLength

BILLING_PERIODS = "billing-periods"
"""Patch: runs from before it had no timers; they bill from their next run on."""


class Invoicing:
    """The billing half of ``AccountWorkflow``; ``_persist`` and ``_store`` are its writing half's."""

    _input: AccountWorkflowInput | None
    _account: AccountState | None
    _run: RunLength
    _bills: bool
    _writing: asyncio.Lock

    async def _persist(self, commands: list[Command]) -> list[Decision]:
        raise NotImplementedError

    async def _store(self, method: Any, request: Any, summary: str) -> Any:
        raise NotImplementedError

    def _next_due(self) -> datetime | None:
        """When the next period ends, or the next draft's grace is over; None if not billing."""
        account = self._account
        if not self._bills or account is None or not account.billing.bills:
            return None
        billing = account.billing
        assert billing.opened_at is not None and billing.period_start is not None
        if account.status is AccountStatus.CLOSED:  # the last invoices, at once
            return workflow.now() if billing.final_due or billing.awaiting else None
        due = [end + self._grace for _, end in billing.awaiting]
        due.append(BillingPeriod.parse(billing.period).next_end(billing.opened_at, billing.period_start))
        return min(due)

    async def _wait_for_work(self, has_work: Any) -> None:
        """Until there is work, or the next billing step is due (a durable timer)."""
        due = self._next_due()
        if due is None:
            await workflow.wait_condition(has_work)
            return
        seconds = (due - workflow.now()).total_seconds()
        if seconds <= 0:
            return
        self._run.slept()
        with contextlib.suppress(TimeoutError):  # the timer fired: a billing step is due
            await workflow.wait_condition(has_work, timeout=timedelta(seconds=seconds))

    async def _bill_due(self) -> None:
        """Draft every period that has ended, finalize every draft whose grace is over."""
        while (due := self._next_due()) is not None and due <= workflow.now():
            assert self._account is not None
            billing = self._account.billing
            closed = self._account.status is AccountStatus.CLOSED
            finals = [seq for seq, end in billing.awaiting
                      if closed or end + self._grace <= workflow.now()]
            if finals:
                await self._finalize(finals[0])
            else:
                await self._persist([DraftInvoice(sequence=billing.drafted + 1, period_end=due)])

    async def _close_period(self) -> PeriodClosed:
        """End the running period now, and finalize its invoice (and any still in grace)."""
        async with self._writing:
            assert self._account is not None
            billing = self._account.billing
            if not (self._bills and billing.bills) or billing.period_start is None:
                return PeriodClosed()
            start, now = billing.period_start, workflow.now()
            if now > start:
                await self._persist([DraftInvoice(sequence=billing.drafted + 1, period_end=now)])
            closed = self._account.billing.drafted
            for sequence, _ in self._account.billing.awaiting:
                await self._finalize(sequence)
            if closed == billing.drafted:
                return PeriodClosed()
            number = await self._number("invoice", str(closed))
            return PeriodClosed(sequence=closed, number=number, period_start=start, period_end=now)

    async def _finalize(self, sequence: int) -> None:
        number = await self._number("invoice", str(sequence))
        await self._persist([FinalizeInvoice(sequence=sequence, number=number)])

    async def _number(self, kind: str, key: str) -> str:
        assert self._input is not None
        request = NumberRequest(account_id=self._input.account_id, kind=kind, key=key,
                                year=workflow.now().year)
        number: str = await self._store(BillingActivities.allocate_number, request,
                                        f"number for {kind} {key}")
        return number

    async def _with_facts(self, refund: RefundCharge) -> RefundCharge:
        """The refund, with what the log says of its charge (and a credit note's number)."""
        assert self._input is not None and self._account is not None
        request = FactsRequest(account_id=self._input.account_id, refund=refund, year=workflow.now().year,
                               may_number=not refused_by_the_account(self._account, refund))
        facts: ChargeFacts = await self._store(BillingActivities.charge_facts, request,
                                               f"facts of charge {refund.charge_id}")
        return refund.model_copy(update={"facts": facts})

    @property
    def _grace(self) -> timedelta:
        assert self._input is not None
        return timedelta(seconds=self._input.invoice_grace_seconds)
