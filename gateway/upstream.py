"""What the routes call: the account workflows (through ``client.AccountClient``, connected on
first use) and the event log in Postgres (read-only).

The Temporal connection is made lazily, and again after a failure, so the gateway starts and
answers 503 while Temporal is down instead of refusing to start. The log is read with the
CLI's own reader (``starter.history``) and its error handling (``event_log_errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg

from activities.rows import STORED_EVENT, StoredEvent
from client import AccountClient
from gateway.problems import ACCOUNT_NOT_FOUND, DATABASE_UNAVAILABLE, TEMPORAL_UNAVAILABLE, ApiProblem
from gateway.settings import GatewaySettings
from starter.errors import CliError, ExitCode
from starter.history import CONNECT_TIMEOUT_SECONDS, History, event_log_errors, read_history

POLL_INTERVAL = 0.05  # seconds between looks at the log while waiting for a command
T = TypeVar("T")

_RECORDED = f"SELECT {STORED_EVENT} FROM account_events WHERE account_id = %s AND command_id = %s"


class Upstream:
    """The gateway's two backends. ``accounts`` may be given (tests, embedding); otherwise it is
    connected as ``settings`` say, with every call bounded by ``settings.http_timeout``."""

    def __init__(self, settings: GatewaySettings, accounts: AccountClient | None = None) -> None:
        self.settings = settings
        self._accounts = accounts
        self._connecting = asyncio.Lock()

    async def accounts(self) -> AccountClient:
        """The client; connects first if needed (``TemporalUnreachable`` if it cannot)."""
        if self._accounts is None:
            async with self._connecting:  # one connection for concurrent first requests
                if self._accounts is None:
                    self._accounts = await AccountClient.connect(
                        self.settings, rpc_timeout=self.settings.http_timeout)
        return self._accounts

    async def history(self, account_id: str) -> History:
        """Every event of the account, from the log (404 when it has none)."""
        with _problems(account_id):
            return await asyncio.wait_for(read_history(self._database_url(), account_id),
                                          self.settings.http_timeout)

    async def read(self, account_id: str, query: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``query`` on a connection to the log and its projections, within the timeout; the
        database's failures as problems (503)."""
        async def run() -> T:
            async with await psycopg.AsyncConnection.connect(
                    self._database_url(), connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True) as conn:
                return await query(conn)

        with _problems(account_id), event_log_errors(no_log=ExitCode.UNAVAILABLE):
            return await asyncio.wait_for(run(), self.settings.http_timeout)

    async def recorded(self, account_id: str, command_id: str) -> StoredEvent | None:
        """The event that recorded ``command_id`` on the account, if any."""
        with _problems(account_id), event_log_errors(no_log=ExitCode.UNAVAILABLE):
            return await asyncio.wait_for(self._look(account_id, command_id, wait=False),
                                          self.settings.http_timeout)

    async def wait_recorded(self, account_id: str, command_id: str) -> StoredEvent:
        """The event that records ``command_id``, once it is there; a 503 when it is not within
        the timeout (the command may still be recorded: repeating it with the same key is safe)."""
        with _problems(account_id), event_log_errors(no_log=ExitCode.UNAVAILABLE):
            try:
                found = await asyncio.wait_for(self._look(account_id, command_id, wait=True),
                                               self.settings.http_timeout)
            except TimeoutError:
                raise ApiProblem(TEMPORAL_UNAVAILABLE, f"account {account_id} has not recorded command "
                                 f"{command_id} within {self.settings.http_timeout:g}s: is a worker "
                                 "running? Repeat the request with the same Idempotency-Key",
                                 {"account_id": account_id, "command_id": command_id}) from None
        assert found is not None  # we waited for it
        return found

    async def _look(self, account_id: str, command_id: str, *, wait: bool) -> StoredEvent | None:
        async with await psycopg.AsyncConnection.connect(
                self._database_url(), connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True) as conn:
            while True:
                row = await (await conn.execute(_RECORDED, (account_id, command_id))).fetchone()
                if row is not None or not wait:
                    return None if row is None else StoredEvent(*row)
                await asyncio.sleep(POLL_INTERVAL)

    def _database_url(self) -> str:
        if not self.settings.database_url:
            raise ApiProblem(DATABASE_UNAVAILABLE, "the gateway has no DATABASE_URL: it cannot read "
                             "the event log")
        return self.settings.database_url


@contextmanager
def _problems(account_id: str) -> Iterator[None]:
    """The event log's failures (``CliError``s of the shared reader, timeouts) as problems."""
    try:
        yield
    except CliError as error:
        kind = ACCOUNT_NOT_FOUND if error.code == ExitCode.NOT_FOUND else DATABASE_UNAVAILABLE
        raise ApiProblem(kind, error.message, {"account_id": account_id}) from None
    except TimeoutError:
        raise ApiProblem(DATABASE_UNAVAILABLE, "the event log did not answer in time",
                         {"account_id": account_id}) from None
