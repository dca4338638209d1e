"""What the event-store activities take and answer. These models are recorded in workflow
histories, so a change must keep reading what older workers wrote (new fields optional)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from pydantic import BaseModel, Field

from activities.rows import event_id
from domain.events import Event
from domain.memory import PriorOutcome, Recorded
from domain.state import AccountState, AccountStatus

VERSION_CONFLICT = "VersionConflict"


class NewEvent(BaseModel):
    """An event the workflow decided, with the id that makes its append idempotent."""

    event_id: UUID
    event: Event


class AppendEvents(BaseModel):
    """Append ``events`` after ``expected_version`` and project the result into ``accounts``."""

    account_id: str
    expected_version: int = Field(ge=0)
    events: list[NewEvent] = Field(min_length=1)
    balance: int
    status: AccountStatus
    currency: str
    overdraft_limit: int

    @classmethod
    def recording(cls, before: AccountState, events: Sequence[Event],
                  after: AccountState) -> AppendEvents:
        """The request that records ``events``, which take the account from ``before`` to
        ``after``, each under its derived id."""
        new_events = [NewEvent.model_construct(event_id=event_id(before.account_id, version, event),
                                               event=event)
                      for version, event in enumerate(events, start=before.version + 1)]
        return cls(
            account_id=before.account_id, expected_version=before.version, events=new_events,
            balance=after.balance, status=after.status, currency=after.currency,
            overdraft_limit=after.overdraft_limit)

    @property
    def last_version(self) -> int:
        return self.expected_version + len(self.events)

    def without_first(self, count: int) -> AppendEvents:
        """The same request for all but its first ``count`` events."""
        return self.model_copy(update={"expected_version": self.expected_version + count,
                                       "events": self.events[count:]})


class RecordedCommand(BaseModel):
    """A command the log holds already: its event's version and type, the reason of a decline or
    rejection, and what the command asked."""

    version: int
    event_type: str
    reason: str = ""
    fingerprint: str | None = None

    def as_recorded(self) -> Recorded:
        prior = {"CHARGE_DECLINED": PriorOutcome("declined", self.reason),
                 "COMMAND_REJECTED": PriorOutcome("rejected", self.reason)}.get(self.event_type)
        return Recorded(self.version, prior, self.fingerprint)


class AppendResult(BaseModel):
    """``appended`` is False only when some command ids were already in the log; they are listed
    in ``already_recorded`` (command id -> version) and ``recorded`` (what each came to), and
    nothing was written. (``recorded`` is missing from results recorded by older workers.)"""

    appended: bool
    version: int
    already_recorded: dict[str, int] = Field(default_factory=dict)
    recorded: dict[str, RecordedCommand] | None = None

    def known_commands(self) -> dict[str, Recorded]:
        """The commands the log already holds, as the account's memory keeps them."""
        if self.recorded is not None:
            return {key: command.as_recorded() for key, command in self.recorded.items()}
        return {key: Recorded(version, PriorOutcome("unknown"))
                for key, version in self.already_recorded.items()}


class LoadAccount(BaseModel):
    account_id: str
