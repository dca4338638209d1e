"""The typed async client of the account workflows, for services and for the CLI alike.

    client = await AccountClient.connect(Settings.from_env(), rpc_timeout=10)
    await client.open("acme", "USD")
    outcome = await client.charge("acme", 1250, command_id="invoice-42")

``AccountClient`` (``account_client``) is the whole surface; its calls go through ``transport``
(timeouts, revival of a finished workflow); what it raises is a ``BillingError`` subclass
(``errors``); concurrent calls are coalesced by ``batches``.
"""

from client.account_client import AccountClient
from client.commands import new_command_id
from client.errors import (
    AccountClosedError,
    AccountExists,
    AccountHasBalance,
    AccountNotFound,
    AccountNotRunning,
    BillingError,
    CommandRefused,
    CommandRejectedError,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidCommand,
    NamespaceNotFound,
    TemporalUnavailable,
    TemporalUnreachable,
)

__all__ = [
    "AccountClient", "AccountClosedError", "AccountExists", "AccountHasBalance", "AccountNotFound",
    "AccountNotRunning", "BillingError", "CommandRefused", "CommandRejectedError",
    "IdempotencyKeyReused", "InsufficientFunds", "InvalidCommand", "NamespaceNotFound",
    "TemporalUnavailable", "TemporalUnreachable", "new_command_id",
]
