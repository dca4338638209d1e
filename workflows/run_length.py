"""How long a run of the account workflow has grown, so that it continues as new in time.

The workflow counts what it adds to its history itself rather than asking
``workflow.info()``, whose answer differs between a live run and its replay when local
activities are involved (docs/decisions.md, "Run length is counted by the workflow").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from temporalio import workflow
from temporalio.common import RawValue

UPDATES_PER_RUN = 1_500
"""Temporal accepts at most 2,000 updates per run; continue as new well before that."""
PAYLOAD_BYTES_PER_RUN = 2 * 1024 * 1024
"""Payload bytes received per run (start, signals, updates) before continuing as new. A run's
history holds them at most about twice (a regular activity repeats its batch), so this stays
near the 4 MiB at which the server suggests continuing as new, far below its 50 MiB limit."""
WORKFLOW_TASK = 3
"""Scheduled, started, completed: counted for every input and activity result, as if each had
needed its own workflow task, so that the count is an upper bound in the usual case."""
COUNT_RUN_LENGTH = "count-run-length"
"""Patch: histories from before it decided from the history length and the server's hint."""


@dataclass
class RunLength:
    """What this run has added to its history, counted from what the workflow itself handled:
    the same in every replay. Each entry counts its workflow task too (``WORKFLOW_TASK``)."""

    events: int = 0
    payload_bytes: int = 0
    updates: int = 0
    counted: bool = True
    """False for a run that started before ``COUNT_RUN_LENGTH``: it decides as it did then."""

    def received(self, args: Sequence[RawValue], *, update: bool = False) -> None:
        """The start or a signal (one event), or an update (accepted and completed)."""
        self.events += (2 if update else 1) + WORKFLOW_TASK
        self.payload_bytes += sum(arg.payload.ByteSize() for arg in args)

    def ran_activity(self, *, local: bool) -> None:
        """A local activity's marker; or a regular one's scheduled, started and ended."""
        self.events += 1 if local else 3 + WORKFLOW_TASK

    def slept(self) -> None:
        """A timer started and fired."""
        self.events += 2 + WORKFLOW_TASK

    def is_long(self, history_budget: int) -> bool:
        """Whether to continue as new; asked only right after an append, so that a replay
        asks at the same point."""
        if self.counted:
            return (self.events >= history_budget or self.payload_bytes >= PAYLOAD_BYTES_PER_RUN
                    or self.updates >= UPDATES_PER_RUN)
        info = workflow.info()
        return (info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= history_budget
                or self.updates >= UPDATES_PER_RUN)
