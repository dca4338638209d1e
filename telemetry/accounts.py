"""What the account workflow records: its commands by kind and outcome, once decided and stored,
and the runs revived from the log.

Called from the workflow (``workflows/persistence.py``, after each store call and when a revived
run has loaded), so it records with the workflow's meter, which skips replays
(``telemetry.metrics.meter``).
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.account import Decision
from domain.commands import Command
from domain.state import AccountState
from telemetry.metrics import count_commands, workflows_revived
from workflows.inbox import status_of


def decided(commands: Sequence[Command], decisions: Sequence[Decision]) -> None:
    """Count ``commands`` by kind and by what each came to (``decisions``, in the same order)."""
    count_commands((command.kind, status_of(decision))
                   for command, decision in zip(commands, decisions, strict=True))


def revived(account: AccountState) -> None:
    """Count a run revived from the log, by what the log holds: ``open`` (its workflow was
    terminated), ``closed`` (it had finished after the close), ``missing`` (no such account)."""
    workflows_revived(account.status.value if account.exists else "missing")
