"""Child processes of the local stack: the worker (its log echoed), the demo, and stopping.

Children run in their own sessions, so a Ctrl-C in the terminal reaches only the starter,
which then stops them in order (worker first, so it can finish in-flight work).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import ROOT, StartupError

WORKER_READY = "worker polling task queue"


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
