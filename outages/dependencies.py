"""Waiting for a service at start: try, and on a failure that waiting can cure, log one
readable line, pause (capped exponential backoff) and try again, until the deadline.

    waiting for Postgres at db:5432/billing as billing_worker: Connection refused (attempt 3, next in 2 s)

Only outages are waited out (``postgres_reason`` and ``temporal_reason`` say which errors are
outages and how to say them in a few words); anything else, a bad migration or a bug, is
raised at once. A process that is told to stop while it waits stops without serving.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from temporalio.service import RPCError

from outages.backoff import Backoff, Deadline

T = TypeVar("T")
Reason = Callable[[BaseException], "str | None"]
"""What is wrong, in a few words, if ``error`` is an outage worth waiting out; else None."""

log = logging.getLogger("billing.startup")
DEFAULT_BACKOFF = Backoff()  # 0.5 s, 1, 2, 4, 8, then every 10 s


class Unavailable(RuntimeError):
    """A service did not come back before the deadline (``BILLING_STARTUP_TIMEOUT``)."""


class Stopped(Exception):
    """SIGINT or SIGTERM arrived while waiting."""


async def wait_for(service: str, where: str, attempt: Callable[[], Awaitable[T]], *, reason: Reason,
                   deadline: Deadline, backoff: Backoff = DEFAULT_BACKOFF,
                   stop: asyncio.Event | None = None) -> T:
    """``await attempt()`` until it succeeds; between failures that ``reason`` calls outages,
    log a line and pause. Raises ``Unavailable`` once ``deadline`` is past, ``Stopped`` when
    ``stop`` is set, and any error that is not an outage as it is."""
    failures = 0
    while True:
        if stop is not None and stop.is_set():
            raise Stopped(f"stopped while waiting for {service}")
        try:
            result = await attempt()
        except Exception as error:
            why = reason(error)
            if why is None:
                raise
            failures += 1
            now = time.monotonic()
            delay = deadline.next_delay(backoff, failures, now)
            if delay is None:
                waited = now - deadline.started_at
                raise Unavailable(f"{service} at {where} still unavailable after {waited:.0f} s "
                                  f"({failures} attempts): {why}") from error
            log.warning("waiting for %s at %s: %s (attempt %d, next in %s s)",
                        service, where, why, failures, f"{delay:.3g}")
            await _pause(delay, stop)
            continue
        if failures:
            log.info("%s at %s is back after %d failed attempts", service, where, failures)
        return result


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
    raise Stopped("stopped while waiting")


def postgres_reason(error: BaseException) -> str | None:
    """Connection errors (refused, no socket, shutting down, starting up, the connection lost
    mid-migration, no pooled connection in time) are outages. So are a missing role or
    database: while Postgres is being set up they come and go; if they stay, the bound ends the
    wait with this reason in its message."""
    if not isinstance(error, psycopg.OperationalError):  # PoolTimeout is one
        return None
    text = _first_line(str(error))
    # libpq says 'connection to server at "h", port p failed: Connection refused'; the end is news.
    return " ".join(text.rsplit(" failed: ", 1)[-1].split()) or type(error).__name__


def temporal_reason(error: BaseException) -> str | None:
    """An RPC error (unavailable, namespace not yet registered), a failed connect (the SDK
    raises a bare ``RuntimeError("Failed client connect: ...")``) or no answer in time."""
    if isinstance(error, RPCError):
        return f"{error.status.name.lower() if error.status else 'error'}: {_first_line(error.message)}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if type(error) is RuntimeError:  # not a subclass: ConfigError is one, and is no outage
        text = str(error)
        # The transport error's own words: ... Os { code: 111, ..., message: "Connection refused" }
        found = re.search(r'message: "([^"]+)"', text)
        return found.group(1) if found else _first_line(text)[:200]
    return None


def postgres_where(url: str) -> str:
    """``host[:port]/database as user`` of a libpq URL or conninfo string, without the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable DATABASE URL)"
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    port = f":{info['port']}" if info.get("port") else ""
    user = f" as {info['user']}" if info.get("user") else ""
    return f"{host}{port}/{info.get('dbname') or '(default database)'}{user}"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""
