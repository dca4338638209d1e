"""Coalescing: concurrent calls to one account leave together, as one ``post_batch`` message.

Like TigerBeetle's clients: while a batch is in flight the next one fills, so batches grow with
load and an idle account still answers at once. Each caller gets its own outcome, or its own
typed exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from client.errors import BillingError, refusal
from domain.commands import AddFunds, Charge
from workflows.interface import MAX_BATCH_BYTES, CommandOutcome

SendBatch = Callable[[str, list[AddFunds | Charge], bool], Awaitable[list[CommandOutcome] | None]]
"""``send(account_id, commands, wait)``: one message; the outcomes in order when ``wait``."""


@dataclass
class _Queued:
    command: AddFunds | Charge
    future: asyncio.Future
    wait: bool  # the caller wants the outcome, not just delivery


@dataclass
class _Queue:
    """Commands waiting for one account, and how many batches are in flight for it."""

    waiting: list[_Queued] = field(default_factory=list)
    in_flight: int = 0


class Batcher:
    """Per-account queues, drained by ``send`` at most ``max_in_flight`` batches at a time."""

    def __init__(self, send: SendBatch, *, max_in_flight: int, max_batch: int) -> None:
        self._send_batch = send
        self._max_in_flight = max_in_flight  # Temporal allows 10 in-flight updates per workflow
        self._max_batch = max_batch
        self._queues: dict[str, _Queue] = {}

    async def submit(self, account_id: str, command: AddFunds | Charge,
                     wait: bool) -> CommandOutcome | None:
        """Queue ``command``; it leaves with the account's next batch."""
        future = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(account_id, _Queue())
        queue.waiting.append(_Queued(command, future, wait))
        self._pump(account_id, queue)
        return await future

    def _pump(self, account_id: str, queue: _Queue) -> None:
        """Send the next batch unless the account already has enough in flight; the batch
        that finishes sends the rest, so commands never wait for a timer."""
        if queue.in_flight >= self._max_in_flight or not queue.waiting:
            return
        batch = _take(queue.waiting, self._max_batch, MAX_BATCH_BYTES - 64)  # 64: the envelope
        queue.in_flight += 1
        task = asyncio.create_task(self._send(account_id, batch))
        task.add_done_callback(lambda _: self._batch_done(account_id, queue))

    def _batch_done(self, account_id: str, queue: _Queue) -> None:
        queue.in_flight -= 1
        self._pump(account_id, queue)
        if queue.in_flight == 0 and not queue.waiting:
            self._queues.pop(account_id, None)

    async def _send(self, account_id: str, batch: list[_Queued]) -> None:
        """One message: an update when anyone waits for outcomes, else a signal."""
        wait = any(queued.wait for queued in batch)
        try:
            outcomes = await self._send_batch(account_id, [q.command for q in batch], wait)
        except asyncio.CancelledError:  # the client is going away: so are its callers
            for queued in batch:
                queued.future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - every caller in this batch learns why it failed
            for queued in batch:
                if not queued.future.done():
                    queued.future.set_exception(error)
            return
        if outcomes is not None and len(outcomes) != len(batch):  # never left waiting
            mismatch = BillingError(f"account {account_id}: {len(outcomes)} outcomes for a batch "
                                    f"of {len(batch)} commands")
            for queued in batch:
                queued.future.set_exception(mismatch)
            return
        settled: Sequence[CommandOutcome | None] = outcomes or [None] * len(batch)
        for queued, outcome in zip(batch, settled, strict=True):
            _settle(queued, outcome)


def command_size(command: AddFunds | Charge) -> int:
    """A command's weight in a batch, as UTF-8 JSON bytes."""
    return len(command.model_dump_json().encode())


def _take(waiting: list[_Queued], most: int, budget: int) -> list[_Queued]:
    """Remove and return the next batch: at most ``most`` commands and ``budget`` JSON bytes
    (always at least one command; a single command is far below the budget)."""
    count, weight = 0, 0
    for queued in waiting[:most]:
        weight += command_size(queued.command) + 2
        if count and weight > budget:
            break
        count += 1
    batch = waiting[:count]
    del waiting[:count]
    return batch


def _settle(queued: _Queued, outcome: CommandOutcome | None) -> None:
    future = queued.future
    if future.done():
        return
    if outcome is None or not queued.wait:
        future.set_result(None)
    elif (refused := refusal(outcome)) is not None:
        future.set_exception(refused)
    else:
        future.set_result(outcome)
