"""End-to-end fixtures: the real worker process, and the CLI run the way a user runs it.

The worker is ``python worker.py`` with the test's own database, Temporal dev server and task
queue in its environment; ``cli(...)`` runs ``python -m starter ...`` with the same settings.
Every wait is bounded, so a broken feature fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "worker polling task queue"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
CLI_TIMEOUT = 90.0

Cli = Callable[..., subprocess.CompletedProcess]


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_polling(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while READY_LINE not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not polling after {READY_TIMEOUT:g}s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, as a process manager would; the exit code, or an error if it hangs."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            raise AssertionError(
                f"worker ignored SIGTERM for {STOP_TIMEOUT:g}s:\n{self.output()}") from None


@pytest.fixture
def service_env(worker_db_url: str, temporal_env: WorkflowEnvironment, task_queue: str) -> dict[str, str]:
    """The environment that points the worker and the CLI at this test's services. The
    database is migrated already; the worker logs in as its own role."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BILLING_")}
    env.update(
        DATABASE_URL=worker_db_url,
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        TEMPORAL_NAMESPACE=temporal_env.client.namespace,
        BILLING_TASK_QUEUE=task_queue,
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def worker_process(service_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    """``python worker.py``, already polling; killed at teardown if the test left it running."""
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=service_env,
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    worker = WorkerProcess(process, log)
    try:
        worker.wait_until_polling()
        yield worker
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)


@pytest.fixture
def cli(service_env: dict[str, str]) -> Cli:
    """Run ``python -m starter <args>`` and return the finished process (text output)."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "starter", *args], cwd=ROOT, env=service_env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT)

    return run
