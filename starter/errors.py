"""How the CLI fails: one ``CliError`` carrying a message and a distinct exit code.

Every layer of the starter turns what went wrong (bad input, a declined charge, an unknown
account, an unreachable server) into a ``CliError``; ``cli.run`` prints it as one
``error: ...`` line and returns its code. (``starter.accounts.cli_error`` does it for the
client's ``BillingError``s.)
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """The process exit codes, documented in ``billing --help``."""

    OK = 0
    FAILURE = 1  # anything unexpected
    FINDINGS = 1  # `check` found something that does not reconcile (same code as FAILURE)
    USAGE = 2  # bad arguments or input, missing configuration
    REFUSED = 3  # the account recorded the command but declined or rejected it
    NOT_FOUND = 4  # no such account
    EXISTS = 5  # `open` of an account that already exists
    UNAVAILABLE = 6  # Temporal, a worker or Postgres did not answer


class CliError(Exception):
    """A failure to report to the user. ``details`` is added to the ``--json`` error object."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
