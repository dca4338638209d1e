"""The account workflow's inbox: commands received and not yet stored, and the answers that
update callers wait for.

Handlers only put commands in; the workflow's main loop is the single taker, so commands are
decided strictly in the order they arrived. Plain data, deterministic: it lives inside the
workflow and replays with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Literal

from domain.account import Decision
from domain.commands import CloseAccount, Command
from domain.events import ChargeDeclined, CommandRejected
from workflows.interface import CommandOutcome


@dataclass
class Pending:
    command: Command
    ticket: int | None = None  # set when an update waits for the outcome


@dataclass
class Inbox:
    waiting: list[Pending] = field(default_factory=list)
    writing: int = 0
    """Commands taken by the loop whose events are not yet stored."""
    updates_waiting: int = 0
    """Update handlers waiting for their outcomes."""
    validated: dict[str, list[Command]] = field(default_factory=dict)
    """Update id -> the commands its validator parsed, until its handler takes them."""
    closes_without_id: int = 0
    """Close signals that came without a command id (each is given one)."""
    _outcomes: dict[int, CommandOutcome] = field(default_factory=dict)
    _tickets: count[int] = field(default_factory=lambda: count(1))

    def __bool__(self) -> bool:
        return bool(self.waiting)

    @property
    def pending(self) -> int:
        """Commands received but not yet in the log: zero means the log has caught up."""
        return len(self.waiting) + self.writing

    def put(self, commands: Sequence[Command]) -> None:
        """Commands whose sender waits for nothing (signals)."""
        self.waiting.extend(Pending(command) for command in commands)

    def put_awaited(self, commands: Sequence[Command]) -> list[int]:
        """Commands whose sender waits for their outcomes (updates): one ticket each."""
        tickets = [next(self._tickets) for _ in commands]
        self.waiting.extend(map(Pending, commands, tickets))
        return tickets

    def through_first_close(self) -> int | None:
        """How many waiting commands come up to and including the first close; None without one."""
        return next((index + 1 for index, pending in enumerate(self.waiting)
                     if isinstance(pending.command, CloseAccount)), None)

    def take(self, most: int) -> list[Pending]:
        """The next batch, oldest first; it counts as being written until ``settle``."""
        batch = self.waiting[:most]
        del self.waiting[: len(batch)]
        self.writing = len(batch)
        return batch

    def settle(self, batch: list[Pending], decisions: Sequence[Decision] | None) -> list[str]:
        """The batch is stored (with these decisions) or given up (None). Returns the refusals
        that no caller waits for (signals), for the log."""
        self.writing = 0
        unheard = []
        for pending, decision in zip(batch, decisions or (), strict=False):
            answer = outcome(pending.command, decision)
            if pending.ticket is not None:
                self._outcomes[pending.ticket] = answer
            elif answer.status == "refused":
                unheard.append(answer.reason)
        return unheard

    def answered(self, tickets: Sequence[int]) -> bool:
        return all(ticket in self._outcomes for ticket in tickets)

    def answers(self, tickets: Sequence[int]) -> list[CommandOutcome]:
        return [self._outcomes.pop(ticket) for ticket in tickets]


Status = Literal["applied", "declined", "rejected", "duplicate", "refused"]


def status_of(decision: Decision) -> Status:
    """What a decision came to, in one word: the ``status`` of its ``CommandOutcome``."""
    if decision.reused is not None:
        return "refused"
    if not decision.events:
        return "duplicate"
    last = decision.events[-1]
    if isinstance(last, ChargeDeclined):
        return "declined"
    return "rejected" if isinstance(last, CommandRejected) else "applied"


def outcome(command: Command, decision: Decision) -> CommandOutcome:
    """The core's decision as the answer an update caller receives."""
    command_id = getattr(command, "command_id", None)
    status = status_of(decision)
    if status == "refused":
        return CommandOutcome(command_id=command_id, status=status, balance=decision.balance,
                              version=decision.version,
                              reason=f"idempotency key {command_id!r} was used before for another "
                                     f"command ({decision.reused}); nothing was recorded")
    if status == "duplicate":
        prior = decision.prior
        original = "applied" if prior is None else None if prior.status == "unknown" else prior.status
        return CommandOutcome(
            command_id=command_id, status=status, reason=prior.reason if prior else "",
            balance=decision.balance, version=decision.version, original_status=original)
    last = decision.events[-1]
    reason = last.reason if isinstance(last, ChargeDeclined | CommandRejected) else ""
    return CommandOutcome(command_id=command_id, status=status, reason=reason,
                          balance=decision.balance, version=decision.version)
