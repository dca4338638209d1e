"""What the account workflow records: its commands by kind and outcome, once decided and stored.

Called from the workflow (``workflows/account.py``, after each store call), so it records with
the workflow's meter, which skips replays (``telemetry.metrics.meter``).
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.account import Decision
from domain.commands import Command
from telemetry.metrics import count_commands
from workflows.inbox import status_of


def decided(commands: Sequence[Command], decisions: Sequence[Decision]) -> None:
    """Count ``commands`` by kind and by what each came to (``decisions``, in the same order)."""
    count_commands((command.kind, status_of(decision))
                   for command, decision in zip(commands, decisions, strict=True))
