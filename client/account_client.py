"""``AccountClient``: every call to the account workflows, typed in and out.

Commands are validated locally with the domain's own models, so a malformed one is refused
before it is sent. Two ways to send a fund or charge:

- ``add_funds``/``charge``/``submit`` coalesce concurrent calls to one account into
  ``post_batch`` messages (``client.batches``): the path for services under load;
- ``send_one`` sends one command as its own ``add_funds``/``charge`` update (or signal), the
  documented one-command contract, as the CLI does (refunds go this way too).

With ``rpc_timeout``, every call is bounded; a call that runs out of time, like every other
Temporal failure, surfaces as a ``BillingError`` subclass (``client.errors``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from temporalio.client import Client
from temporalio.common import QueryRejectCondition, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from client.batches import Batcher
from client.billing import BillingCalls
from client.commands import or_new, validated
from client.errors import (
    AccountExists,
    AccountNotFound,
    TemporalUnavailable,
    TemporalUnreachable,
)
from config import Settings, connect_temporal
from domain.commands import AddFunds, Charge, CloseAccount
from domain.state import AccountStatus
from workflows.interface import (
    CLOSE,
    MAX_BATCH_COMMANDS,
    OPENED,
    POST_BATCH,
    STATE,
    WORKFLOW_TYPE,
    AccountView,
    AccountWorkflowInput,
    BatchOutcome,
    CommandOutcome,
    OpenOutcome,
    PostBatch,
    workflow_id,
)

POLL_INTERVAL = 0.1


class AccountClient(BillingCalls):
    """Open, fund, charge, refund, close and inspect accounts, and close their billing periods
    (``BillingCalls``); the calls go through ``AccountTransport``. One instance per process is
    plenty.

    ``task_queue`` is needed only to open accounts; ``rpc_timeout`` (seconds) bounds each call,
    an update included, and is the default patience of ``wait_for``."""

    def __init__(self, client: Client, task_queue: str | None = None, *,
                 rpc_timeout: float | None = None, max_in_flight: int = 1,
                 max_batch: int = MAX_BATCH_COMMANDS) -> None:
        super().__init__(client, task_queue, rpc_timeout=rpc_timeout)
        self._batches = Batcher(self._send_batch, max_in_flight=max_in_flight, max_batch=max_batch)
        self.messages_sent = 0
        """How many ``post_batch`` messages the coalescing path has sent."""

    @classmethod
    async def connect(cls, settings: Settings, *, rpc_timeout: float | None = None,
                      **options: Any) -> AccountClient:
        """Connect as ``settings`` say; ``TemporalUnreachable`` when the server does not answer."""
        try:
            client = await asyncio.wait_for(connect_temporal(settings), rpc_timeout)
        except (TimeoutError, RuntimeError, RPCError) as error:
            raise TemporalUnreachable(settings.temporal_address, _connect_reason(error)) from error
        return cls(client, settings.task_queue, rpc_timeout=rpc_timeout, **options)

    async def open(self, account_id: str, currency: str, overdraft_limit: int = 0,
                   **options: Any) -> OpenOutcome:
        """Start the account's workflow and wait until it is open. Raises ``AccountExists``."""
        start = validated(_start_input, account_id=account_id, currency=currency,
                          overdraft_limit=overdraft_limit, **options)
        if self._task_queue is None:
            raise ValueError("this AccountClient was made without a task queue: it cannot open accounts")
        handle = await self._call(account_id, self.temporal.start_workflow(
            WORKFLOW_TYPE, start, id=workflow_id(account_id), task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE, rpc_timeout=self._rpc_timeout,
            static_summary=f"Account {account_id}, {currency}"))
        try:
            outcome = await self._call(account_id, handle.execute_update(
                OPENED, result_type=OpenOutcome, rpc_timeout=self._rpc_timeout))
        except AccountNotFound:  # the run we just started ended before it could answer: only a
            # closed account's does (it loads the log, finds nothing to do, and completes)
            raise AccountExists(f"account {account_id} already exists, and is closed") from None
        except TemporalUnavailable as error:
            if isinstance(error, TemporalUnreachable):
                raise
            raise TemporalUnavailable(f"{error} Its workflow has started, and opens the account "
                                      "as soon as a worker runs it.") from error
        if not outcome.created and outcome.account.status == AccountStatus.CLOSED:
            # the revived run may answer before it completes: the same answer as when it did not
            raise AccountExists(f"account {account_id} already exists, and is closed", outcome)
        if not outcome.created:
            raise AccountExists(f"account {account_id} already exists: its event log holds "
                                f"{outcome.account.version} event(s); its workflow is running "
                                "again", outcome)
        return outcome

    async def state(self, account_id: str, *, running_only: bool = False) -> AccountView:
        """The account as its workflow sees it (the ``state`` query). With ``running_only``, a
        workflow that has ended raises ``AccountNotRunning`` instead of answering from its
        history."""
        reject = QueryRejectCondition.NOT_OPEN if running_only else None
        return await self._call(account_id, self.handle(account_id).query(
            STATE, result_type=AccountView, rpc_timeout=self._rpc_timeout,
            reject_condition=reject))

    async def wait_for(self, account_id: str, predicate: Callable[[AccountView], bool], *,
                       timeout: float | None = None, what: str = "the awaited state") -> AccountView:
        """Poll ``state`` until ``predicate(view)``; ``TemporalUnavailable`` after ``timeout``
        seconds (default: the rpc timeout; without either, wait as long as it takes)."""
        limit = self._timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while not predicate(view := await self.state(account_id)):
            if deadline is not None and loop.time() > deadline:
                raise TemporalUnavailable(
                    f"account {account_id}: {what} did not happen within {limit:g}s (now at "
                    f"version {view.version}, {view.pending_commands} pending)")
            await asyncio.sleep(POLL_INTERVAL)
        return view

    async def add_funds(self, account_id: str, amount: int, *, command_id: str | None = None,
                        description: str = "", currency: str | None = None,
                        wait: bool = True) -> CommandOutcome | None:
        """Credit ``amount`` minor units, coalesced with concurrent calls. With ``currency``, an
        account in another currency rejects it. With ``wait=False``, return once the account
        has received the command, without its outcome."""
        command = validated(AddFunds, command_id=or_new(command_id), amount=amount,
                            description=description, currency=currency)
        return await self.submit(account_id, command, wait=wait)

    async def charge(self, account_id: str, amount: int, *, command_id: str | None = None,
                     description: str = "", currency: str | None = None,
                     wait: bool = True) -> CommandOutcome | None:
        """Debit ``amount`` minor units, coalesced; raises ``InsufficientFunds`` when declined."""
        command = validated(Charge, command_id=or_new(command_id), amount=amount,
                            description=description, currency=currency)
        return await self.submit(account_id, command, wait=wait)

    async def submit(self, account_id: str, command: AddFunds | Charge, *,
                     wait: bool = True) -> CommandOutcome | None:
        """Queue ``command``; it leaves with the account's next ``post_batch`` message."""
        return await self._batches.submit(account_id, command, wait)

    async def close(self, account_id: str, *, command_id: str | None = None, reason: str = "",
                    payout: bool = False, wait: bool = True) -> CommandOutcome | None:
        """Close the account, after every command it received before. One with a balance is
        refused (``AccountHasBalance``) unless ``payout`` (with a ``reason``) settles it first.
        With ``wait=False``, signal it and return at once."""
        command = validated(CloseAccount, command_id=or_new(command_id), reason=reason,
                            payout=payout)
        payload = command.model_dump(mode="json", exclude={"kind"})
        if not wait:
            await self._signal(account_id, CLOSE, payload, command.command_id)
            return None
        return await self._update(account_id, CLOSE, payload, CommandOutcome, command.command_id)

    async def _send_batch(self, account_id: str, commands: list[AddFunds | Charge],
                          wait: bool) -> list[CommandOutcome] | None:
        """One ``post_batch`` message: an update when ``wait``, else a signal."""
        body = PostBatch(commands=commands)
        self.messages_sent += 1
        if not wait:
            await self._signal(account_id, POST_BATCH, body)
            return None
        result = await self._update(account_id, POST_BATCH, body, BatchOutcome)
        return result.outcomes

def _start_input(**fields: Any) -> AccountWorkflowInput:
    """The start input, checked as the workflow will check it (its ``open_command``)."""
    start = AccountWorkflowInput(**fields)
    start.open_command()
    return start


def _connect_reason(error: BaseException) -> str:
    """The useful part of the SDK's connection error, e.g. ``Connection refused``."""
    if isinstance(error, asyncio.TimeoutError):
        return "timed out"
    found = re.search(r'message: "([^"]+)"', str(error))
    return found.group(1) if found else str(error)
