"""Child processes of the local stack: the worker (its log echoed, started again with backoff
when it exits on its own), the demo, and stopping.

Children run in their own sessions, so a Ctrl-C in the terminal reaches only the starter,
which then stops them in order (worker first, so it can finish in-flight work).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack import ROOT, StartupError
from outages.backoff import Backoff

WORKER_READY = "worker polling task queue"
RESTART_BACKOFF = Backoff(initial=1.0, cap=30.0)


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    ready: threading.Event
    output: threading.Thread
    recent: deque[str]
    """Its last lines of output, echoed or not."""

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


def start_worker(env: dict[str, str], *, echo: bool = True,
                 command: Sequence[str] | None = None) -> WorkerProcess:
    """Start ``python worker.py`` (or ``command``) and echo its log prefixed with ``worker |``
    (or read it silently with ``echo=False``). Returns at once; ``wait_ready`` tells when it
    polls."""
    process = subprocess.Popen(
        list(command or [sys.executable, str(ROOT / "worker.py")]), cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    ready, recent = threading.Event(), deque[str](maxlen=500)
    output = threading.Thread(target=_echo, args=(process, ready, recent, echo), name="worker-log",
                              daemon=True)
    output.start()
    return WorkerProcess(process, ready, output, recent)


def _echo(process: subprocess.Popen, ready: threading.Event, recent: deque[str], echo: bool) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        recent.append(line.rstrip("\n"))
        if echo:
            print(f"  worker | {line}", end="", flush=True)
        if WORKER_READY in line:
            ready.set()


@dataclass(frozen=True)
class RestartPolicy:
    """When ``starter up`` starts a worker that exited on its own again: after a pause that
    doubles (1 s, 2, 4, … 30) while it keeps failing quickly (within ``rapid`` seconds of its
    start), not at all once it has done so ``give_up_after`` times in a row. A worker that ran
    longer starts again after the shortest pause. (A worker waits for Postgres and Temporal by
    itself, up to ``BILLING_STARTUP_TIMEOUT``, so an outage is not a quick failure.)"""

    backoff: Backoff = RESTART_BACKOFF
    rapid: float = 30.0
    give_up_after: int = 5

    def next_delay(self, rapid_failures: int) -> float | None:
        """The pause before the next start after ``rapid_failures`` quick failures in a row
        (0: the last run was not quick); None: give up."""
        if rapid_failures >= self.give_up_after:
            return None
        return self.backoff.delay(max(1, rapid_failures))


class SupervisedWorker:
    """The worker of ``starter up``: ``keep_running`` starts it again when it has exited."""

    def __init__(self, spawn: Callable[[], WorkerProcess], *, policy: RestartPolicy = RestartPolicy(),
                 say: Callable[[str], None] = print) -> None:
        self._spawn, self.policy, self._say = spawn, policy, say
        self.current = spawn()
        self.started_at = time.monotonic()
        self.rapid_failures = 0
        self.restarts = 0

    @property
    def process(self) -> subprocess.Popen:
        return self.current.process

    def wait_ready(self, timeout: float) -> None:
        self.current.wait_ready(timeout)

    def stop(self) -> None:
        self.current.stop()

    def keep_running(self) -> bool:
        """If the worker has exited, say so and start it again after the policy's pause
        (blocking; Ctrl-C interrupts it). False, and nothing started, once it keeps failing."""
        code = self.current.process.poll()
        if code is None:
            return True
        ran = time.monotonic() - self.started_at
        self.rapid_failures = self.rapid_failures + 1 if ran < self.policy.rapid else 0
        self.current.output.join(timeout=5)  # its last lines first
        delay = self.policy.next_delay(self.rapid_failures)
        if delay is None:
            self._say(f"the worker exited ({exit_status(code)}), {self.rapid_failures} times in a row "
                      f"within {self.policy.rapid:g} s of starting; not starting it again (its log "
                      "is above)")
            return False
        self._say(f"the worker exited unexpectedly ({exit_status(code)}) after {ran:.0f} s; "
                  f"starting it again in {delay:g} s")
        time.sleep(delay)
        self.current = self._spawn()
        self.started_at = time.monotonic()
        self.restarts += 1
        self._say(f"worker started again: pid {self.current.process.pid} (restart {self.restarts})")
        return True


def run_demo(env: dict[str, str], demo_args: list[str], timeout: float) -> int:
    """Run ``python -m starter demo`` to completion; return its exit code."""
    command = [sys.executable, "-m", "starter", "demo", *demo_args]
    try:
        return subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              timeout=timeout, start_new_session=True).returncode
    except subprocess.TimeoutExpired:
        print(f"the demo did not finish within {timeout:.0f} s and was stopped", flush=True)
        return 1


def exit_status(returncode: int) -> str:
    """``code 3``, or ``killed by SIGKILL`` for a process that a signal ended."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"code {returncode}"


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
