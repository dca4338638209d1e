"""The Kafka relay as a child process of the local stack (``python -m relay``), like the worker in
``devstack.processes``: its log echoed as ``relay |``, ready once it has reached Postgres and Kafka.

    relay = start_relay(env)            # env: DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, ...
    relay.wait_ready(60)
    ...
    relay.stop()                        # SIGTERM: the transaction in flight commits, exit 0

``kill()`` is a crash (SIGKILL), for the fault tests: the next relay aborts what it left open.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from devstack import ROOT, StartupError
from devstack.processes import stop_process

READY = "relay running"
STOP_TIMEOUT = 45.0
"""A commit that waits for a broker that is away can take the relay's Kafka timeout (30 s)."""


@dataclass
class RelayProcess:
    process: subprocess.Popen
    output: threading.Thread
    recent: deque[str]
    """Its last lines of output, echoed or not."""
    ready: threading.Event = field(default_factory=threading.Event)

    def wait_ready(self, timeout: float) -> None:
        """Return once the relay publishes; raise StartupError if it exits or times out first."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.process.poll() is not None:
                self.output.join(timeout=2)
                last = "\n".join(list(self.recent)[-15:])
                raise StartupError(f"the relay exited with code {self.process.returncode}:\n{last}")
            if time.monotonic() > deadline:
                raise StartupError(f"the relay did not reach Postgres and Kafka within {timeout:.0f} s")

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after ``STOP_TIMEOUT``); its exit code."""
        stop_process(self.process, timeout=STOP_TIMEOUT)
        self.output.join(timeout=5)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, whatever it is doing."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.output.join(timeout=5)


def start_relay(env: dict[str, str], *, echo: bool = True, module: str = "relay") -> RelayProcess:
    """Start ``python -m relay`` (or another ``module``) with ``env``; returns at once."""
    process = subprocess.Popen(
        [sys.executable, "-m", module], cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # a Ctrl-C reaches the starter only, which stops us in order
    )
    output = threading.Thread(target=lambda: _follow(handle, echo), name="relay-log", daemon=True)
    handle = RelayProcess(process, output, deque(maxlen=500))
    output.start()
    return handle


def _follow(relay: RelayProcess, echo: bool) -> None:
    assert relay.process.stdout is not None
    for line in relay.process.stdout:
        relay.recent.append(line.rstrip("\n"))
        if echo:
            print(f"  relay | {line}", end="", flush=True)
        if READY in line:
            relay.ready.set()
