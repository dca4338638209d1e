"""``LogFold``: one account's log folded event by event with the domain's own ``evolve``,
recording what is wrong with the log itself (gaps, events that do not parse, impossible orders,
a running balance past the overdraft limit)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from activities.rows import StoredEvent
from domain.account import evolve
from domain.events import AccountCreated, CommandRejected, Event, InvoiceDrafted, InvoiceFinalized
from domain.state import AccountState, AccountStatus
from domain.upcasting import UnknownSchemaVersion
from operations.reconcile.report import Finding
from projections.feed import FeedPosition


@runtime_checkable
class Watcher(Protocol):
    """Sees every event as it is folded (the checks of the feed's projections)."""

    def observe(self, account_id: str, at: FeedPosition, stored: StoredEvent, event: Event,
                before: AccountState, after: AccountState) -> None: ...


class LogFold:
    """Folds one account's rows with ``evolve`` and records what is wrong with the log itself.

    Once the log is found broken (a gap, an event that does not parse, an impossible order),
    the rest of it is skipped and ``state`` is not compared with anything: it would only
    repeat the same problem as differences."""

    __slots__ = ("_overdrawn", "_watchers", "account_id", "broken", "findings", "state")

    def __init__(self, account_id: str, watchers: Sequence[Watcher] = ()) -> None:
        self.account_id = account_id
        self.state = AccountState(account_id=account_id)
        self.broken = False
        self.findings: list[Finding] = []
        self._overdrawn = False
        self._watchers = watchers

    def add(self, row: StoredEvent, at: FeedPosition | None = None) -> None:
        """Fold one more row; ``at``, its place in the feed, is shown to the watchers."""
        if self.broken:
            return
        state, version, event_type = self.state, row.version, row.event_type
        if version != state.version + 1:
            return self._break("versions", state.version + 1, version, "gap or repeat in the log")
        try:
            event = row.event()
        except (ValidationError, UnknownSchemaVersion) as error:
            why = f"{error.error_count()} error(s)" if isinstance(error, ValidationError) else error
            return self._break("event", "a valid event", event_type,
                               f"version {version} does not parse: {why}")
        problem = _out_of_order(state, event, self.account_id)
        if problem:
            return self._break("event", problem[0], event_type, f"version {version}: {problem[1]}")
        before, state = state, evolve(state, event)
        if at is not None:
            for watcher in self._watchers:
                watcher.observe(self.account_id, at, row, event, before, state)
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


AFTER_CLOSE = (CommandRejected, InvoiceDrafted, InvoiceFinalized)
"""What a closed account still records: rejections, and its final invoice (drafted at the close)."""


def _out_of_order(state: AccountState, event: Event, account_id: str) -> tuple[str, str] | None:
    """Why ``event`` cannot follow ``state`` in a log that ``decide`` wrote, or None."""
    if state.exists:
        if isinstance(event, AccountCreated):
            return "no second ACCOUNT_CREATED", "the account was already created"
        if state.status is AccountStatus.CLOSED and not isinstance(event, AFTER_CLOSE):
            return "COMMAND_REJECTED", "only rejections and the final invoice may follow ACCOUNT_CLOSED"
        return None
    if not isinstance(event, AccountCreated):
        return "ACCOUNT_CREATED", "the log must start with ACCOUNT_CREATED"
    if event.account_id != account_id:
        return account_id, f"ACCOUNT_CREATED names account {event.account_id}"
    return None
