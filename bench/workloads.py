"""The benchmark's workloads through Temporal. Each returns what it measured; none asserts speed.

Every command is a charge of 1 minor unit on accounts with a limit high enough that none is
declined, so the expected end state is exact: balance = -commands, version = commands + 1.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.worker import Worker

from bench.echo import EchoWorkflow
from client import AccountClient
from workflows.interface import AccountView, workflow_id

NO_LIMIT = 10**15


@dataclass
class Result:
    seconds: float
    commands: int
    latencies: list[float] | None = None

    @property
    def rate(self) -> float:
        return self.commands / self.seconds

    def percentile(self, fraction: float) -> float:
        assert self.latencies
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def open_accounts(accounts: AccountClient, prefix: str, count: int, **options) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(count)]
    await asyncio.gather(*(accounts.open(i, "USD", overdraft_limit=NO_LIMIT, **options) for i in ids))
    return ids


async def signals(client: Client, ids: list[str], commands: int, senders: int) -> Result:
    """One command per ``charge`` signal (how most services call it), ``senders`` at a time;
    timed until every command is in the log."""
    started = time.perf_counter()
    await _send_signals(client, [workflow_id(i) for i in ids], commands, senders, "charge")
    await settle(client, ids, commands)
    return Result(time.perf_counter() - started, commands)


async def signal_ingestion(client: Client, task_queue: str, workflows: int, commands: int,
                           senders: int) -> Result:
    """The dev server's own signal intake: the same signals to workflows no worker runs."""
    ids = [f"sink-{time.monotonic_ns()}-{i}" for i in range(workflows)]
    for sink in ids:
        await client.start_workflow("BenchSink", id=sink, task_queue=f"{task_queue}-nobody")
    started = time.perf_counter()
    await _send_signals(client, ids, commands, senders, "charge")
    elapsed = time.perf_counter() - started
    for sink in ids:
        await client.get_workflow_handle(sink).terminate("benchmark done")
    return Result(elapsed, commands)


async def batched(accounts: AccountClient, ids: list[str], commands: int, callers: int) -> Result:
    """``callers`` concurrent callers, each awaiting its own outcome; the client coalesces."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(callers)

    async def call(i: int) -> None:
        async with gate:
            begun = time.perf_counter()
            await accounts.charge(ids[i % len(ids)], 1, command_id=f"{ids[0]}-b{i}")
            latencies.append(time.perf_counter() - begun)

    started = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(commands)))
    return Result(time.perf_counter() - started, commands, latencies)


async def update_latency(client: Client, account_id: str, samples: int) -> Result:
    """Light load: one ``charge`` update at a time, each waiting for its outcome."""
    handle = client.get_workflow_handle(workflow_id(account_id))
    return await _one_at_a_time(
        samples, lambda i: handle.execute_update("charge", {"command_id": f"lat-{i}", "amount": 1}))


async def update_floor(client: Client, task_queue: str, samples: int) -> Result:
    """The same sequential updates to a workflow that does nothing but answer them."""
    queue = f"{task_queue}-echo"
    async with Worker(client, task_queue=queue, workflows=[EchoWorkflow]):
        handle = await client.start_workflow(EchoWorkflow.run, id=f"echo-{time.monotonic_ns()}",
                                             task_queue=queue)
        await handle.execute_update(EchoWorkflow.echo, 0)  # the first task is not an update's
        result = await _one_at_a_time(samples, lambda i: handle.execute_update(EchoWorkflow.echo, i))
        await handle.signal(EchoWorkflow.done)
        await handle.result()
    return result


async def _one_at_a_time(samples: int, call: Callable[[int], Awaitable[object]]) -> Result:
    """Await ``call(0)``, ``call(1)``, ... in turn, timing each."""
    latencies = []
    started = time.perf_counter()
    for i in range(samples):
        begun = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - begun)
    return Result(time.perf_counter() - started, samples, latencies)


async def settle(client: Client, ids: list[str], commands_in_total: int, timeout: float = 300) -> None:
    """Wait until the accounts' versions add up to every command sent plus their openings."""
    expected = commands_in_total + len(ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = await asyncio.gather(*(
            client.get_workflow_handle(workflow_id(i)).query("state", result_type=AccountView)
            for i in ids))
        if sum(view.version for view in views) >= expected and not any(v.pending_commands for v in views):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"accounts did not settle within {timeout} s")


async def _send_signals(client: Client, workflow_ids: list[str], commands: int, senders: int,
                        name: str) -> None:
    handles = [client.get_workflow_handle(i) for i in workflow_ids]
    queue = iter(range(commands))

    async def sender() -> None:
        for i in queue:
            await handles[i % len(handles)].signal(name, {"command_id": f"s{i}", "amount": 1})

    await asyncio.gather(*(sender() for _ in range(senders)))


def summary(latencies: list[float]) -> str:
    return f"mean {statistics.fmean(latencies) * 1000:.1f} ms"
