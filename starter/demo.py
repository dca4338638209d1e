"""``billing demo``: open a few accounts, send them a burst of funds and charges, show the result.

The operations go through ``AccountClient``'s batching path, as a busy service would send them:
at most ``--concurrency`` callers at once, and concurrent calls to one account leave together
as one ``post_batch`` message. Every tenth caller waits for its outcome (its batch goes as an
update, so declines are counted as they happen); the rest only wait for delivery (a batch of
those goes as a signal). Each command has its own idempotency key, so each becomes exactly one
event: once an account's version is 1 + the commands sent to it and nothing is pending, it has
recorded them all. Then the demo prints the balances, how many messages carried the
operations, and the link to the workflows in the web UI.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from config import Settings
from domain.commands import AddFunds, Charge
from domain.money import currency_exponent
from starter.accounts import Accounts
from starter.errors import CliError, ExitCode
from starter.history import count_events
from starter.inputs import open_input
from starter.output import Output, money
from workflows.interface import AccountView, AccountWorkflowInput

T = TypeVar("T")
UPDATE_EVERY = 10


@dataclass(frozen=True)
class Operation:
    account_id: str
    command: AddFunds | Charge
    wait: bool  # the caller waits for the outcome, else only for delivery


@dataclass
class Tally:
    awaited: int = 0  # callers that waited for the outcome
    unawaited: int = 0  # callers that waited only for delivery
    declined: int = 0
    messages: int = 0
    seconds_sending: float = 0.0
    expected_versions: Counter[str] = field(default_factory=Counter)


def plan(account_ids: list[str], operations: int, currency: str, tag: str,
         rng: random.Random) -> list[Operation]:
    """``operations`` funds and charges spread round-robin; each account's first is a fund."""
    unit = 10 ** currency_exponent(currency)
    planned = []
    for index in range(operations):
        account_id = account_ids[index % len(account_ids)]
        model = AddFunds if index < len(account_ids) or rng.random() < 0.55 else Charge
        command = model(command_id=f"{tag}-op-{index}", amount=rng.randint(unit, 50 * unit),
                        description=f"demo operation {index}", currency=currency)
        planned.append(Operation(account_id, command, wait=index % UPDATE_EVERY == UPDATE_EVERY - 1))
    return planned


async def run_demo(args: argparse.Namespace, out: Output) -> None:
    """Open, send, settle, report (the ``demo`` verb)."""
    settings = Settings.from_env()
    tag = f"demo-{secrets.token_hex(3)}"
    account_ids = [f"{tag}-{number}" for number in range(1, args.accounts + 1)]
    starts = [open_input(account_id, args.currency, "0") for account_id in account_ids]
    operations = plan(account_ids, args.operations, args.currency, tag, random.Random())
    accounts = await Accounts.connect(settings, args.timeout)
    started = time.monotonic()
    with _progress(quiet=args.json) as progress:
        views = await _open_all(accounts, starts, args.concurrency, progress)
        tally = await _send_all(accounts, views, operations, args.concurrency, progress)
        settled = await _settle_all(accounts, tally.expected_versions, progress)
    counts = await count_events(settings.database_url, account_ids) if settings.database_url else None
    _report(out, settled, tally, counts, time.monotonic() - started, accounts.web_ui(args.ui_url))


def _progress(*, quiet: bool) -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), disable=quiet)


async def _open_all(accounts: Accounts, starts: list[AccountWorkflowInput], concurrency: int,
                    progress: Progress) -> dict[str, AccountView]:
    task = progress.add_task("opening accounts", total=len(starts))
    gate = asyncio.Semaphore(concurrency)

    async def open_one(start: AccountWorkflowInput) -> AccountView:
        async with gate:
            outcome = await accounts.open(start)
        progress.advance(task)
        return outcome.account

    views = await _all(open_one(start) for start in starts)
    return {view.account_id: view for view in views}


async def _send_all(accounts: Accounts, views: dict[str, AccountView], operations: list[Operation],
                    concurrency: int, progress: Progress) -> Tally:
    """Send every operation, at most ``concurrency`` at once; a decline is counted, not fatal."""
    task = progress.add_task("sending funds and charges", total=len(operations))
    tally, gate, started = Tally(), asyncio.Semaphore(concurrency), time.monotonic()
    tally.expected_versions.update({account_id: view.version for account_id, view in views.items()})

    async def send(operation: Operation) -> None:
        async with gate:
            await _send_one(accounts, views[operation.account_id], operation, tally)
        progress.advance(task)

    await _all(send(operation) for operation in operations)
    tally.seconds_sending = time.monotonic() - started
    tally.messages = accounts.client.messages_sent  # the client is the demo's own
    return tally


async def _send_one(accounts: Accounts, view: AccountView, operation: Operation, tally: Tally) -> None:
    try:
        await accounts.submit(view, operation.command, wait=operation.wait, batched=True)
    except CliError as error:
        if error.code != ExitCode.REFUSED:
            raise
        tally.declined += 1
    tally.awaited += operation.wait
    tally.unawaited += not operation.wait
    tally.expected_versions[operation.account_id] += 1


async def _settle_all(accounts: Accounts, expected: Counter[str],
                      progress: Progress) -> list[AccountView]:
    """Wait until every account has recorded every command sent to it."""
    task = progress.add_task("waiting for every event", total=len(expected))

    async def settle(account_id: str) -> AccountView:
        view = await accounts.wait_for(
            account_id, lambda v: v.pending_commands == 0 and v.version >= expected[account_id],
            f"recording all {expected[account_id]} events")
        progress.advance(task)
        return view

    return await _all(settle(account_id) for account_id in expected)


async def _all(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await concurrently; on the first failure cancel the rest, and raise a CliError as
    itself rather than inside an ExceptionGroup."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except* CliError as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


def _report(out: Output, views: list[AccountView], tally: Tally, counts: dict[str, int] | None,
            seconds: float, web_ui: str) -> None:
    sent = tally.awaited + tally.unawaited
    data = {"accounts": [view.model_dump(mode="json") for view in views], "operations": sent,
            "awaited": tally.awaited, "unawaited": tally.unawaited, "declined": tally.declined,
            "messages": tally.messages,
            "seconds_sending": round(tally.seconds_sending, 3), "seconds_total": round(seconds, 3),
            "event_counts": counts, "web_ui": web_ui}
    rate = sent / tally.seconds_sending if tally.seconds_sending else 0.0
    lines = [f"sent {sent} operations ({tally.awaited} awaited their outcome, {tally.declined} "
             f"of those declined; {tally.unawaited} only their delivery) in {tally.messages} "
             f"post_batch messages, in {tally.seconds_sending:.2f}s ({rate:,.0f}/s); all "
             f"recorded after {seconds:.2f}s"]
    if counts is not None:
        lines.append("event log: " + ", ".join(f"{kind} {count}" for kind, count in counts.items()))
    lines.append(f"web UI: {web_ui}")
    out.result(data, Group(_balances(views), *lines))


def _balances(views: list[AccountView]) -> Table:
    table = Table(title="balances", title_justify="left")
    for name in ("account", "balance", "version", "status"):
        table.add_column(name, justify="right" if name in ("balance", "version") else "left")
    for view in views:
        table.add_row(view.account_id, money(view.balance, view.currency), str(view.version),
                      view.status.value)
    return table
