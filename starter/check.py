"""``starter check``: reconcile the event log with its projections and with the running workflows.

The log is the source of truth. Every account's events are streamed in (account, version)
order from one server-side cursor and folded with the domain's own ``evolve``; the folded state
is then compared, a batch of accounts at a time, with each projection (today only the
``accounts`` table) and, optionally, with each open account's workflow (its ``state`` query).
Everything else is checked with set-based SQL that returns only the offending rows:

- versions run exactly 1..n per account (with UNIQUE(account_id, version), count = max and
  min = 1 is enough);
- no command id was applied twice, and every fund/charge event carries one;
- an ``accounts`` row has events, and events have an ``accounts`` row;
- the running balance never passes ``-overdraft_limit``, after any event (checked in the fold).

The SQL part runs in one REPEATABLE READ, READ ONLY transaction, so a live system yields one
consistent snapshot. Workflows are queried after it, so a difference there is only reported if
it is still there after a short delay, against a fresh read of the log, and the workflow is idle.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

import psycopg
import pydantic_core
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError, computed_field
from rich.console import Console
from rich.table import Table
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode

from activities.event_store import event_from_row
from config import ConfigError, Settings, connect_temporal
from domain.model import (
    AccountCreated,
    AccountState,
    AccountStatus,
    CommandRejected,
    Event,
    evolve,
)
from workflows.messages import AccountView, workflow_id

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 6  # as starter.errors.ExitCode
FETCH_SIZE = 5_000  # rows per round trip of the event cursor
COMPARE_BATCH = 2_000  # folded accounts per projection query
WORKFLOW_CONCURRENCY = 32
RECHECK_DELAY = 0.5  # seconds before a workflow difference is looked at again
QUERY_TIMEOUT = timedelta(seconds=10)
_COMMANDS_KEPT = 64
"""The fold forgets command ids past this many: ``evolve`` copies ``recent_commands`` on every
event, and the check needs none of them (duplicates are found in SQL), so a long log stays linear."""


class Finding(BaseModel):
    """One thing that does not reconcile: ``field`` of ``account_id`` should be ``expected``."""

    account_id: str
    field: str
    expected: int | str | None
    actual: int | str | None
    detail: str = ""

    def line(self) -> str:
        text = f"account {self.account_id}: {self.field} expected {self.expected}, got {self.actual}"
        return f"{text} ({self.detail})" if self.detail else text


class Report(BaseModel):
    """What ``reconcile`` looked at and what it found; ``ok`` when nothing."""

    accounts_checked: int = 0
    events_checked: int = 0
    workflows_checked: int = 0
    workflows_busy: int = 0  # differed while busy (commands pending or state moving): not findings
    findings: list[Finding] = []
    elapsed_seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        lines = [f"accounts {self.accounts_checked}, events {self.events_checked}, workflows "
                 f"{self.workflows_checked}, findings {len(self.findings)}"]
        return "\n".join(lines + [finding.line() for finding in self.findings])


# --- the fold: one account's log, event by event ----------------------------------------------

class LogFold:
    """Folds one account's rows with ``evolve`` and records what is wrong with the log itself.

    Once the log is found broken (a gap, an event that does not parse, an impossible order),
    the rest of it is skipped and ``state`` is not compared with anything: it would only
    repeat the same problem as differences."""

    __slots__ = ("account_id", "state", "broken", "findings", "_overdrawn")

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.state = AccountState(account_id=account_id)
        self.broken = False
        self.findings: list[Finding] = []
        self._overdrawn = False

    def add(self, version: int, event_type: str, payload: dict, command_id: str | None) -> None:
        if self.broken:
            return
        state = self.state
        if version != state.version + 1:
            return self._break("versions", state.version + 1, version, "gap or repeat in the log")
        try:
            event = event_from_row(event_type, payload, command_id)
        except ValidationError as error:
            return self._break("event", "a valid event", event_type,
                               f"version {version} does not parse: {error.error_count()} error(s)")
        problem = _out_of_order(state, event, self.account_id)
        if problem:
            return self._break("event", problem[0], event_type, f"version {version}: {problem[1]}")
        state = evolve(state, event)
        if len(state.recent_commands) > _COMMANDS_KEPT:
            state = state.model_copy(update={"recent_commands": {}})
        if state.balance < -state.overdraft_limit and not self._overdrawn:
            self._overdrawn = True  # report the first time only; the rest follow from it
            self.findings.append(Finding(
                account_id=self.account_id, field="running_balance",
                expected=f">= {-state.overdraft_limit}", actual=state.balance,
                detail=f"after {event_type} at version {version}"))
        self.state = state

    def _break(self, field: str, expected: Any, actual: Any, detail: str) -> None:
        self.broken = True
        self.findings.append(Finding(account_id=self.account_id, field=field,
                                     expected=expected, actual=actual, detail=detail))


def _out_of_order(state: AccountState, event: Event, account_id: str) -> tuple[str, str] | None:
    """Why ``event`` cannot follow ``state`` in a log that ``decide`` wrote, or None."""
    creates = isinstance(event, AccountCreated)
    if state.exists:
        if creates:
            return "no second ACCOUNT_CREATED", "the account was already created"
        if state.status is AccountStatus.CLOSED and not isinstance(event, CommandRejected):
            return "COMMAND_REJECTED", "only rejections may follow ACCOUNT_CLOSED"
        return None
    if not creates:
        return "ACCOUNT_CREATED", "the log must start with ACCOUNT_CREATED"
    if event.account_id != account_id:
        return account_id, f"ACCOUNT_CREATED names account {event.account_id}"
    return None


# --- projections: read models derived from the log --------------------------------------------

@dataclass(frozen=True)
class Projection:
    """A read model and how to check it: ``compare`` a batch of folded states with its rows,
    and find ``orphans``, rows for accounts that have no log at all."""

    name: str
    compare: Callable[[AsyncConnection, Mapping[str, AccountState]], Awaitable[list[Finding]]]
    orphans: Callable[[AsyncConnection, list[str] | None], Awaitable[list[Finding]]]


async def _compare_accounts(conn: AsyncConnection,
                            folded: Mapping[str, AccountState]) -> list[Finding]:
    cursor = await conn.execute(
        "SELECT account_id, balance, version, status, currency, overdraft_limit FROM accounts"
        " WHERE account_id = ANY(%s)", (list(folded),))
    rows = {row[0]: row[1:] for row in await cursor.fetchall()}
    findings = []
    for account_id, state in folded.items():
        row = rows.get(account_id)
        if row is None:
            findings.append(Finding(account_id=account_id, field="accounts.row", expected="a row",
                                    actual=None, detail=f"the log has {state.version} events"))
            continue
        expected = (state.balance, state.version, state.status.value, state.currency,
                    state.overdraft_limit)
        for name, want, got in zip(("balance", "version", "status", "currency", "overdraft_limit"),
                                   expected, row):
            if want != got:
                findings.append(Finding(account_id=account_id, field=f"accounts.{name}",
                                        expected=want, actual=got, detail="folded from the log"))
    return findings


async def _accounts_without_log(conn: AsyncConnection, ids: list[str] | None) -> list[Finding]:
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, version FROM accounts a WHERE NOT EXISTS"
        " (SELECT 1 FROM account_events e WHERE e.account_id = a.account_id){}"
    ).format(_and_ids(ids, "a")), {"ids": ids})
    return [Finding(account_id=account_id, field="events", expected=version, actual=0,
                    detail=f"the accounts row is at version {version} but the log is empty")
            async for account_id, version in cursor]


PROJECTIONS: tuple[Projection, ...] = (
    Projection("accounts", _compare_accounts, _accounts_without_log),
)


# --- set-based checks of the log --------------------------------------------------------------

async def _log_checks(conn: AsyncConnection,
                      ids: list[str] | None) -> tuple[list[Finding], set[str]]:
    """Version ranges, repeated command ids, fund/charge events without one. Also returns the
    accounts whose log cannot be folded (a bad version range, an event that cannot parse)."""
    params = {"ids": ids}
    findings = []
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, count(*), min(version), max(version) FROM account_events{}"
        " GROUP BY account_id HAVING count(*) <> max(version) OR min(version) <> 1"
    ).format(_where_ids(ids)), params)
    findings += [Finding(account_id=account_id, field="versions", expected=f"1..{count}",
                         actual=f"{low}..{high}", detail=f"{count} events")
                 async for account_id, count, low, high in cursor]
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, command_id, array_agg(version ORDER BY version) FROM account_events"
        " WHERE command_id IS NOT NULL{} GROUP BY account_id, command_id HAVING count(*) > 1"
    ).format(_and_ids(ids)), params)
    findings += [Finding(account_id=account_id, field="command_id", expected="applied once",
                         actual=f"applied {len(versions)} times",
                         detail=f"{command_id} at versions {versions}")
                 async for account_id, command_id, versions in cursor]
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, version, event_type FROM account_events WHERE command_id IS NULL"
        " AND event_type IN ('FUND_ADDED', 'CHARGE_APPLIED', 'CHARGE_DECLINED'){}"
    ).format(_and_ids(ids)), params)
    findings += [Finding(account_id=account_id, field="command_id", expected="a command id",
                         actual=None, detail=f"{event_type} at version {version}")
                 async for account_id, version, event_type in cursor]
    unfoldable = {f.account_id for f in findings if f.field == "versions" or f.actual is None}
    return findings, unfoldable


async def _unknown_accounts(conn: AsyncConnection, ids: list[str]) -> list[Finding]:
    """Asked-for accounts with neither a log nor a row: most likely a mistyped id."""
    cursor = await conn.execute(
        "SELECT id FROM unnest(%(ids)s::text[]) AS id WHERE NOT EXISTS"
        " (SELECT 1 FROM account_events e WHERE e.account_id = id)"
        " AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account_id = id)", {"ids": ids})
    return [Finding(account_id=account_id, field="account", expected="a log or a row",
                    actual=None, detail="no such account") async for (account_id,) in cursor]


def _where_ids(ids: list[str] | None, alias: str | None = None) -> sql.Composable:
    return sql.SQL("") if ids is None else sql.SQL(" WHERE ") + _id_filter(alias)


def _and_ids(ids: list[str] | None, alias: str | None = None) -> sql.Composable:
    return sql.SQL("") if ids is None else sql.SQL(" AND ") + _id_filter(alias)


def _id_filter(alias: str | None) -> sql.Composable:
    column = sql.Identifier(alias, "account_id") if alias else sql.Identifier("account_id")
    return sql.SQL("{} = ANY(%(ids)s)").format(column)


# --- reconcile --------------------------------------------------------------------------------

async def reconcile(conn_or_pool: AsyncConnection | AsyncConnectionPool | str, *,
                    temporal_client: Client | None = None,
                    account_ids: Sequence[str] | None = None,
                    projections: Sequence[Projection] = PROJECTIONS,
                    recheck_delay: float = RECHECK_DELAY) -> Report:
    """Check every account (or ``account_ids``) and return what does not reconcile.

    Accepts a connection, a pool or a libpq URL. With ``temporal_client``, also compares each
    open account's workflow with its log."""
    started = time.perf_counter()
    ids = None if account_ids is None else list(dict.fromkeys(account_ids))
    report = Report()
    async with _connection(conn_or_pool) as conn:
        async with _snapshot(conn):
            report.findings, unfoldable = await _log_checks(conn, ids)
            open_accounts = await _fold_all(conn, ids, unfoldable, projections, report,
                                            keep_open=temporal_client is not None)
            for projection in projections:
                orphans = await projection.orphans(conn, ids)
                report.accounts_checked += len({finding.account_id for finding in orphans})
                report.findings += orphans
            if ids:
                report.findings += await _unknown_accounts(conn, ids)
        if temporal_client is not None:
            await _check_workflows(temporal_client, conn, open_accounts, report, recheck_delay)
    report.findings.sort(key=lambda finding: finding.account_id)
    report.elapsed_seconds = round(time.perf_counter() - started, 3)
    return report


async def _fold_all(conn: AsyncConnection, ids: list[str] | None, unfoldable: set[str],
                    projections: Sequence[Projection], report: Report,
                    keep_open: bool) -> dict[str, tuple[int, int]]:
    """Stream the whole log once, fold each account, compare the folded states with every
    projection in batches; with ``keep_open``, return (balance, version) of the open accounts."""
    open_accounts: dict[str, tuple[int, int]] = {}
    batch: dict[str, AccountState] = {}

    async def flush() -> None:
        for projection in projections:
            report.findings += await projection.compare(conn, batch)
        batch.clear()

    async def finish(fold: LogFold) -> None:
        report.accounts_checked += 1
        report.findings += fold.findings
        if fold.broken:
            return
        batch[fold.account_id] = fold.state
        if keep_open and fold.state.status is AccountStatus.OPEN:
            open_accounts[fold.account_id] = (fold.state.balance, fold.state.version)
        if len(batch) >= COMPARE_BATCH:
            await flush()

    cursor = conn.cursor(name="check_account_events")
    set_json_loads(pydantic_core.from_json, cursor)  # payloads: ~7x faster than json.loads
    await cursor.execute(sql.SQL(
        "SELECT account_id, version, event_type, payload, command_id FROM account_events{}"
        " ORDER BY account_id, version").format(_where_ids(ids)), {"ids": ids})
    fold: LogFold | None = None
    # The projection queries in finish() share this connection with the open cursor: same
    # transaction, same snapshot. The connection's lock queues them behind a pending fetch.
    fetch = asyncio.ensure_future(cursor.fetchmany(FETCH_SIZE))
    try:
        while rows := await fetch:
            # Ask for the next rows before folding these, so Postgres reads while Python folds.
            fetch = asyncio.ensure_future(cursor.fetchmany(FETCH_SIZE))
            await asyncio.sleep(0)  # let it send the FETCH
            report.events_checked += len(rows)
            for account_id, version, event_type, payload, command_id in rows:
                if fold is None or account_id != fold.account_id:
                    if fold is not None:
                        await finish(fold)
                    fold = LogFold(account_id)
                    fold.broken = account_id in unfoldable  # reported already: skip it
                fold.add(version, event_type, payload, command_id)
    finally:
        fetch.cancel()  # only still pending if folding failed
    await cursor.close()
    if fold is not None:
        await finish(fold)
    if batch:
        await flush()
    return open_accounts


# --- workflows ---------------------------------------------------------------------------------

async def _check_workflows(client: Client, conn: AsyncConnection,
                           open_accounts: Mapping[str, tuple[int, int]], report: Report,
                           recheck_delay: float) -> None:
    """Query each open account's workflow and compare it with the folded log.

    The snapshot is older than the workflows by the time they are queried, so a difference is
    only a suspicion: after ``recheck_delay`` the suspect is queried again and its log re-read.
    A workflow that has commands pending (queued or being written), or whose version moved
    since the first look, is busy, not wrong: while it appends, the log is ahead of its state."""
    first: dict[str, AccountView | Finding] = {}

    async def first_look(account_id: str) -> None:
        view = await _query(client, account_id)
        if _differences(account_id, view, *open_accounts[account_id]):
            first[account_id] = view

    await _bounded(first_look, open_accounts, WORKFLOW_CONCURRENCY)
    report.workflows_checked = len(open_accounts)
    if not first:
        return
    await asyncio.sleep(recheck_delay)
    second: dict[str, AccountView | Finding] = {}

    async def second_look(account_id: str) -> None:
        second[account_id] = await _query(client, account_id)

    await _bounded(second_look, first, WORKFLOW_CONCURRENCY)
    # Re-read the log only after querying: the log is committed before a workflow's state moves
    # on, so this read is never behind what the workflow answered.
    fresh = await _fold_accounts(conn, list(first))
    for account_id, before in first.items():
        state, view = fresh.get(account_id), second[account_id]
        if state is None or state.status is not AccountStatus.OPEN:
            continue  # closed since the snapshot, or its log is broken (reported already)
        findings = _differences(account_id, view, state.balance, state.version)
        if findings and _busy(before, view):
            report.workflows_busy += 1
        else:
            report.findings += findings


def _busy(before: AccountView | Finding, after: AccountView | Finding) -> bool:
    return isinstance(after, AccountView) and (
        after.pending_commands > 0
        or not isinstance(before, AccountView) or before.version != after.version)


async def _query(client: Client, account_id: str) -> AccountView | Finding:
    """The workflow's ``state``, or why there is none."""
    handle = client.get_workflow_handle(workflow_id(account_id))
    try:
        return await handle.query("state", result_type=AccountView, rpc_timeout=QUERY_TIMEOUT,
                                  reject_condition=QueryRejectCondition.NOT_OPEN)
    except WorkflowQueryRejectedError as error:
        status = error.status.name if error.status is not None else "closed"
        return _workflow_finding(account_id, status, "workflow not running")
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return _workflow_finding(account_id, "not found", "workflow not running")
        return _workflow_finding(account_id, "no answer", f"state query failed: {error}")
    except RPCTimeoutOrCancelledError:
        return _workflow_finding(account_id, "no answer",
                                 f"no state within {QUERY_TIMEOUT.seconds} s (no worker?)")
    except WorkflowQueryFailedError as error:
        return _workflow_finding(account_id, "query failed", str(error))


def _differences(account_id: str, view: AccountView | Finding, balance: int,
                 version: int) -> list[Finding]:
    if isinstance(view, Finding):
        return [view]
    return [Finding(account_id=account_id, field=f"workflow.{name}", expected=want, actual=got,
                    detail="workflow state vs the log")
            for name, want, got in (("balance", balance, view.balance),
                                    ("version", version, view.version))
            if want != got]


def _workflow_finding(account_id: str, actual: str, detail: str) -> Finding:
    return Finding(account_id=account_id, field="workflow", expected="RUNNING", actual=actual,
                   detail=detail)


async def _fold_accounts(conn: AsyncConnection, ids: list[str]) -> dict[str, AccountState]:
    """A fresh fold of a few accounts' logs; broken logs are left out."""
    folds: dict[str, LogFold] = {}
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT account_id, version, event_type, payload, command_id FROM account_events"
            " WHERE account_id = ANY(%s) ORDER BY account_id, version", (ids,))
        async for account_id, *row in cursor:
            folds.setdefault(account_id, LogFold(account_id)).add(*row)
    return {account_id: fold.state for account_id, fold in folds.items() if not fold.broken}


async def _bounded(work: Callable[[str], Awaitable[None]], items: Iterable[str], limit: int) -> None:
    """Run ``work`` over ``items`` with at most ``limit`` at a time, without a task per item."""
    pending = iter(list(items))

    async def worker() -> None:
        for item in pending:  # one shared iterator: each item is taken by exactly one worker
            await work(item)

    await asyncio.gather(*(worker() for _ in range(limit)))


# --- connections -------------------------------------------------------------------------------

@asynccontextmanager
async def _connection(source: AsyncConnection | AsyncConnectionPool | str) -> AsyncIterator[AsyncConnection]:
    if isinstance(source, AsyncConnection):
        yield source
    elif isinstance(source, AsyncConnectionPool):
        async with source.connection() as conn:
            yield conn
    else:
        async with await AsyncConnection.connect(source, autocommit=True) as conn:
            yield conn


@asynccontextmanager
async def _snapshot(conn: AsyncConnection) -> AsyncIterator[None]:
    """One read-only transaction with a single snapshot (unless the caller's is already open)."""
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    async with conn.transaction():
        if outermost:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


# --- the CLI verb ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starter check",
        description="Reconcile the event log with the accounts table and the running workflows.",
        epilog="Exit codes: 0 all reconciled, 1 findings, 2 usage or configuration error, "
               "6 Postgres or Temporal unreachable.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-workflows", action="store_true",
                        help="check the database only; do not query Temporal")
    parser.add_argument("--account", dest="accounts", metavar="ID", nargs="+", action="extend",
                        help="check only these accounts (repeatable)")
    return parser


async def main_async(argv: Sequence[str] | None = None) -> int:
    """Run ``starter check``; return the exit code. Output is flushed before returning."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help (0) or a usage error (2), already printed
        return int(exit.code or 0)
    try:
        settings = Settings.from_env()
        database_url = settings.require_database_url()
    except ConfigError as error:
        return _fail(str(error), EXIT_USAGE)
    temporal = None
    if not args.no_workflows:
        try:
            temporal = await connect_temporal(settings)
        except RuntimeError as error:
            return _fail(f"cannot reach Temporal at {settings.temporal_address}: {error}",
                         EXIT_UNAVAILABLE)
    try:
        report = await reconcile(database_url, temporal_client=temporal, account_ids=args.accounts)
    except psycopg.OperationalError as error:
        return _fail(f"cannot reach Postgres: {error}".strip(), EXIT_UNAVAILABLE)
    except psycopg.errors.UndefinedTable as error:
        return _fail(f"{error} (is the database migrated?)".strip(), EXIT_USAGE)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        render(report, Console(markup=False, highlight=False))
    sys.stdout.flush()  # the CLI may end the process with os._exit
    return EXIT_OK if report.ok else EXIT_FINDINGS


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(argv))


def render(report: Report, console: Console) -> None:
    """The counts as a table, then one line per finding."""
    table = Table(title="starter check", title_justify="left")
    for name in ("accounts", "events", "workflows", "findings", "seconds"):
        table.add_column(name, justify="right")
    table.add_row(str(report.accounts_checked), str(report.events_checked),
                  str(report.workflows_checked), str(len(report.findings)),
                  f"{report.elapsed_seconds:.2f}")
    console.print(table)
    for finding in report.findings:
        console.print(finding.line(), soft_wrap=True)
    if report.workflows_busy:
        console.print(f"{report.workflows_busy} workflow(s) busy (commands pending or state "
                      "moving) differed from the log; not counted as findings")
    console.print("ok" if report.ok else f"{len(report.findings)} finding(s)")


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    sys.stderr.flush()
    return code
