"""The Temporal side of reconciliation: each open account's workflow against its folded log.

The log snapshot is older than the workflows by the time they are queried, so a difference is
only a suspicion until it survives a second look against a fresh read of the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

from psycopg import AsyncConnection

from client import (
    AccountClient,
    AccountNotFound,
    AccountNotRunning,
    BillingError,
    TemporalUnavailable,
)
from domain.state import AccountStatus
from operations.reconcile.queries import fold_accounts
from operations.reconcile.report import Finding, Report
from workflows.interface import AccountView

WORKFLOW_CONCURRENCY = 32
RECHECK_DELAY = 0.5  # seconds before a workflow difference is looked at again


async def check_workflows(accounts: AccountClient, conn: AsyncConnection,
                          open_accounts: Mapping[str, tuple[int, int]], report: Report,
                          recheck_delay: float) -> None:
    """Query each open account's workflow and compare it with the folded log.

    The snapshot is older than the workflows by the time they are queried, so a difference is
    only a suspicion: after ``recheck_delay`` the suspect is queried again and its log re-read.
    A workflow that has commands pending (queued or being written), or whose version moved
    since the first look, is busy, not wrong: while it appends, the log is ahead of its state."""
    first: dict[str, AccountView | Finding] = {}

    async def first_look(account_id: str) -> None:
        view = await _query(accounts, account_id)
        if _differences(account_id, view, *open_accounts[account_id]):
            first[account_id] = view

    await _bounded(first_look, open_accounts, WORKFLOW_CONCURRENCY)
    report.workflows_checked = len(open_accounts)
    if not first:
        return
    await asyncio.sleep(recheck_delay)
    second: dict[str, AccountView | Finding] = {}

    async def second_look(account_id: str) -> None:
        second[account_id] = await _query(accounts, account_id)

    await _bounded(second_look, first, WORKFLOW_CONCURRENCY)
    # Re-read the log only after querying: the log is committed before a workflow's state moves
    # on, so this read is never behind what the workflow answered.
    fresh = await fold_accounts(conn, list(first))
    for account_id, before in first.items():
        state, view = fresh.get(account_id), second[account_id]
        if state is None or state.status is not AccountStatus.OPEN:
            continue  # closed since the snapshot, or its log is broken (reported already)
        findings = _differences(account_id, view, state.balance, state.version)
        if findings and _busy(before, view):
            report.workflows_busy += 1
        else:
            report.findings += findings


async def revive_stopped(accounts: AccountClient, report: Report) -> None:
    """Revive the workflow of every open account found without one running; what could be
    revived moves from the findings to ``report.repaired``."""
    for finding in list(report.findings):
        if finding.field != "workflow" or finding.actual == "no answer":
            continue
        try:
            await accounts.revive(finding.account_id)
        except BillingError as error:
            finding.detail += f"; not revived: {error}"
            continue
        report.findings.remove(finding)
        report.repaired.append(finding.account_id)


def _busy(before: AccountView | Finding, after: AccountView | Finding) -> bool:
    return isinstance(after, AccountView) and (
        after.pending_commands > 0
        or not isinstance(before, AccountView) or before.version != after.version)


async def _query(accounts: AccountClient, account_id: str) -> AccountView | Finding:
    """The workflow's ``state``, or why there is none."""
    try:
        return await accounts.state(account_id, running_only=True)
    except AccountNotRunning as error:
        return _workflow_finding(account_id, error.status, "workflow not running")
    except AccountNotFound:
        return _workflow_finding(account_id, "not found", "workflow not running")
    except TemporalUnavailable as error:
        return _workflow_finding(account_id, "no answer", str(error))
    except BillingError as error:
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


async def _bounded(work: Callable[[str], Awaitable[None]], items: Iterable[str], limit: int) -> None:
    """Run ``work`` over ``items`` with at most ``limit`` at a time, without a task per item."""
    pending = iter(list(items))

    async def worker() -> None:
        for item in pending:  # one shared iterator: each item is taken by exactly one worker
            await work(item)

    await asyncio.gather(*(worker() for _ in range(limit)))
