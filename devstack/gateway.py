"""The HTTP API as a child process of the local stack (``python -m gateway``), like the worker
in ``devstack.processes``: its log echoed as ``gateway |``, ready once it prints its address.

    gateway = start_gateway(env, 8080)
    url = gateway.wait_ready(30)        # http://127.0.0.1:8080
    ...
    gateway.stop()                      # SIGTERM: in-flight requests finish, exit 0
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from devstack import ROOT, StartupError
from devstack.processes import stop_process

READY = re.compile(r"gateway listening on (http://\S+)")


@dataclass
class GatewayProcess:
    process: subprocess.Popen
    output: threading.Thread
    recent: deque[str]
    """Its last lines of output, echoed or not."""
    ready: threading.Event = field(default_factory=threading.Event)
    url: str | None = None
    """``http://host:port`` once it listens (the port it got, if it was started with 0)."""

    def wait_ready(self, timeout: float) -> str:
        """Its URL once it accepts connections; StartupError if it exits or times out first."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.process.poll() is not None:
                self.output.join(timeout=2)
                last = "\n".join(self.recent)
                raise StartupError(f"the HTTP gateway exited with code {self.process.returncode}:\n{last}")
            if time.monotonic() > deadline:
                raise StartupError(f"the HTTP gateway did not listen within {timeout:.0f} s")
        assert self.url is not None
        return self.url

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after 15 s); its exit code."""
        stop_process(self.process, timeout=15)
        self.output.join(timeout=5)
        return self.process.returncode


def start_gateway(env: dict[str, str], port: int, *, host: str = "127.0.0.1",
                  echo: bool = True) -> GatewayProcess:
    """Start ``python -m gateway`` on ``host:port`` (0: any free port) with ``env`` (the
    stack's settings: DATABASE_URL, TEMPORAL_ADDRESS, BILLING_TASK_QUEUE, ...). Returns at
    once; ``wait_ready`` gives its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"], cwd=ROOT,
        env={**env, "BILLING_HTTP_HOST": host, "BILLING_HTTP_PORT": str(port)},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # a Ctrl-C reaches the starter only, which stops us in order
    )
    recent = deque[str](maxlen=200)
    output = threading.Thread(target=lambda: _follow(handle, echo), name="gateway-log", daemon=True)
    handle = GatewayProcess(process, output, recent)
    output.start()
    return handle


def _follow(gateway: GatewayProcess, echo: bool) -> None:
    assert gateway.process.stdout is not None
    for line in gateway.process.stdout:
        gateway.recent.append(line.rstrip("\n"))
        if echo:
            print(f"  gateway | {line}", end="", flush=True)
        if not gateway.ready.is_set() and (found := READY.search(line)):
            gateway.url = found.group(1)
            gateway.ready.set()
