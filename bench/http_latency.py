"""The HTTP API's latency for one charge: ``python -m bench.http_latency [--samples 200]``.

Starts its own stack (``bench.stack``: Postgres with fsync on, a file-backed dev server, one
worker process) and ``python -m gateway`` beside it, opens two accounts, and sends charges one
at a time, alternating: ``AccountClient.charge`` straight to Temporal (the baseline, in this
process) and ``POST /accounts/{id}/charges`` through the gateway (httpx, one kept-alive
connection). Prints p50/p99 of each and the ratio; every charge must be applied.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

import httpx

from bench.stack import running_stack
from bench.workloads import NO_LIMIT, Result
from client import AccountClient
from devstack.gateway import start_gateway


async def measure(samples: int) -> tuple[Result, Result]:
    async with running_stack() as stack:
        settings = stack.settings
        env = dict(os.environ, DATABASE_URL=stack.database_url, TEMPORAL_ADDRESS=settings.temporal_address,
                   BILLING_TASK_QUEUE=settings.task_queue)
        gateway = start_gateway(env, 0, echo=False)
        try:
            url = await asyncio.to_thread(gateway.wait_ready, 60)
            accounts = AccountClient(stack.temporal, stack.settings.task_queue, rpc_timeout=30)
            direct, http_id = (f"lat-{name}-{uuid.uuid4().hex[:6]}" for name in ("direct", "http"))
            for account_id in (direct, http_id):
                await accounts.open(account_id, "USD", overdraft_limit=NO_LIMIT)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                await http.get(f"/accounts/{http_id}")  # connect, and let the gateway reach Temporal
                return await _alternate(samples, accounts, direct, http, http_id)
        finally:
            gateway.stop()


async def _alternate(samples: int, accounts: AccountClient, direct: str, http: httpx.AsyncClient,
                     http_id: str) -> tuple[Result, Result]:
    """``samples`` charges each way, one at a time, alternating so both see the same machine."""
    timings: tuple[list[float], list[float]] = ([], [])
    for i in range(samples):
        begun = time.perf_counter()
        outcome = await accounts.charge(direct, 1, command_id=f"d{i}")
        timings[0].append(time.perf_counter() - begun)
        assert outcome is not None and outcome.status == "applied", outcome
        begun = time.perf_counter()
        response = await http.post(f"/accounts/{http_id}/charges", json={"amount": 1},
                                   headers={"Idempotency-Key": f"h{i}"})
        timings[1].append(time.perf_counter() - begun)
        assert response.status_code == 200 and response.json()["status"] == "applied", response.text
    return Result(sum(timings[0]), samples, timings[0]), Result(sum(timings[1]), samples, timings[1])


def report(samples: int, direct: Result, http: Result) -> str:
    def ms(result: Result, fraction: float) -> str:
        return f"{result.percentile(fraction) * 1000:7.1f} ms"

    lines = [f"charge latency, {samples} sequential charges each way, alternating; "
             f"{os.cpu_count()} cores; Postgres fsync on, dev server SQLite file",
             f"{'path':44} {'p50':>10} {'p99':>10}",
             f"{'AccountClient.charge (no HTTP, baseline)':44} {ms(direct, 0.5)} {ms(direct, 0.99)}",
             f"{'POST /accounts/{id}/charges (gateway)':44} {ms(http, 0.5)} {ms(http, 0.99)}",
             f"{'ratio gateway / baseline':44} {http.percentile(0.5) / direct.percentile(0.5):9.2f}x "
             f"{http.percentile(0.99) / direct.percentile(0.99):9.2f}x"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200, help="charges each way (default 200)")
    samples = parser.parse_args().samples
    direct, http = asyncio.run(measure(samples))
    print(report(samples, direct, http))
    sys.stdout.flush()
    os._exit(0)  # the Temporal client's runtime can abort finalization (docs/decisions.md)


if __name__ == "__main__":
    main()
