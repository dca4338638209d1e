"""What a person sees of an account in the Temporal web UI: search attributes to find it by,
and the workflow's current details (Markdown) to read it at a glance.

The search attributes are upserted when they change, at most once per pass of the workflow's
loop (one batch). They must be registered in the namespace; ``make run``, the tests and the
compose setup do it, and on an existing cluster:

    temporal operator search-attribute create --namespace default \\
        --name BillingAccountId --type Keyword --name BillingCurrency --type Keyword \\
        --name BillingStatus --type Keyword --name BillingBalance --type Int

The details are not part of the history (the UI asks the running workflow), so they may change
freely; the upserts are, hence the patch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from domain.account import balance_change
    from domain.events import Event
    from domain.money import MoneyError, format_minor_units
    from domain.state import AccountState

ACCOUNT_ID = SearchAttributeKey.for_keyword("BillingAccountId")
CURRENCY = SearchAttributeKey.for_keyword("BillingCurrency")
STATUS = SearchAttributeKey.for_keyword("BillingStatus")
BALANCE = SearchAttributeKey.for_int("BillingBalance")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (ACCOUNT_ID, CURRENCY, STATUS, BALANCE)
"""Every search attribute the account workflow sets, with its type."""

UPSERT_SEARCH_ATTRIBUTES = "upsert-search-attributes"
"""Patch: runs from before it set no search attributes."""
RECENT_EVENTS = 5
"""How many of the latest events the details list."""


def cli_type(key: SearchAttributeKey[Any]) -> str:
    """The ``temporal`` CLI's name for the type of ``key`` (only Int and Keyword are used)."""
    return "Int" if key.indexed_value_type == SearchAttributeIndexedValueType.INT else "Keyword"


def registration_flags() -> list[str]:
    """``temporal server start-dev`` arguments that register the search attributes."""
    return [arg for key in SEARCH_ATTRIBUTES
            for arg in ("--search-attribute", f"{key.name}={cli_type(key)}")]


class Visibility:
    """The account as the UI shows it: what was last upserted, and the latest events."""

    def __init__(self) -> None:
        self._shown: tuple[str, str, str, int] | None = None
        self.upserts = False
        """Whether this run upserts its search attributes: ``UPSERT_SEARCH_ATTRIBUTES``, asked
        by the workflow at the start of the run (docs/decisions.md, "Patches asked at the start")."""
        self._recent: deque[tuple[int, Event]] = deque(maxlen=RECENT_EVENTS)

    def recorded(self, first_version: int, events: Iterable[Event]) -> None:
        """Note events just appended, the first of them at ``first_version``."""
        for offset, event in enumerate(events):
            self._recent.append((first_version + offset, event))

    def show(self, state: AccountState) -> None:
        """Upsert the search attributes if they changed, and set the details."""
        if not state.exists:
            return
        values = (state.account_id, state.currency, state.status.value, state.balance)
        if values != self._shown and self.upserts:
            workflow.upsert_search_attributes([
                ACCOUNT_ID.value_set(state.account_id), CURRENCY.value_set(state.currency),
                STATUS.value_set(state.status.value), BALANCE.value_set(state.balance)])
            self._shown = values
        workflow.set_current_details(self.details(state))

    def details(self, state: AccountState) -> str:
        """Markdown: the account's figures, then its latest events."""
        money = _formatter(state.currency)
        lines = [f"### Account {state.account_id}",
                 "",
                 "| Balance | Overdraft limit | Currency | Status | Version |",
                 "|---:|---:|:--|:--|---:|",
                 f"| {money(state.balance)} | {money(state.overdraft_limit)} | {state.currency} "
                 f"| {state.status.value} | {state.version} |"]
        if self._recent:
            lines += ["", "Latest events:", ""]
            lines += [f"- v{version} {event.type}{_amount(event, money)}"
                      f"{f' ({event.command_id})' if event.command_id else ''}"
                      for version, event in reversed(self._recent)]
        return "\n".join(lines)


def _formatter(currency: str) -> Callable[[int], str]:
    def money(amount: int) -> str:
        try:
            return format_minor_units(amount, currency)
        except MoneyError:
            return str(amount)
    return money


def _amount(event: Event, money: Callable[[int], str]) -> str:
    change = balance_change(event)
    return f" {'+' if change > 0 else ''}{money(change)}" if change else ""
