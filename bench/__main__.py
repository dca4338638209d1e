"""Run the benchmark: ``python -m bench`` (about 2 minutes on a quiet machine) or ``python -m bench --quick``.

Starts its own Postgres (fsync on), file-backed Temporal dev server and worker process, runs
the baseline and every mode against them in one process tree, checks each mode's result with
the reconciliation (``starter check``'s ``reconcile``), and prints one table. Speed is
reported, never asserted; a wrong result makes the run fail (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

import psycopg
from rich.console import Console
from rich.table import Table

from bench import replay, workloads
from bench.baseline import run_baseline
from bench.stack import Stack, peak_rss_mib, rss_mib, running_stack
from client import AccountClient
from operations.reconcile import reconcile


@dataclass(frozen=True)
class Sizes:
    baseline: int
    signals: int
    signal_accounts: int
    batched: int
    batched_accounts: int
    callers: int
    hot: int
    latency_samples: int
    long_run: int
    compared: int  # commands for the regular-activity comparison
    fold: int  # events folded in memory
    replay_accounts: int  # the replayed log: accounts x events each
    replay_events: int

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(500, 200, 4, 2_000, 4, 200, 1_000, 30, 2_000, 1_000, 20_000, 200, 100)
        return cls(4_000, 1_000, 20, 20_000, 8, 800, 20_000, 200, 100_000, 10_000, 1_000_000,
                   10_000, 100)


@dataclass
class Row:
    mode: str
    shape: str
    value: str
    ratio: str = ""
    correct: str = ""


@dataclass
class Run:
    stack: Stack
    sizes: Sizes
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    baseline_rate: float = 0.0

    def add(self, mode: str, shape: str, value: str, ratio: str = "", correct: str = "") -> None:
        self.rows.append(Row(mode, shape, value, ratio, correct))
        print(f"  {mode}: {value} {ratio}", flush=True)

    async def verify(self, ids: list[str], charges: dict[str, int]) -> str:
        """Reconcile log, projection and workflows; check each account took exactly its charges."""
        report = await reconcile(self.stack.database_url, temporal_client=self.stack.temporal,
                                 account_ids=ids)
        with psycopg.connect(self.stack.database_url) as conn:
            rows: dict[str, int] = dict(conn.execute(
                "SELECT account_id, balance FROM accounts WHERE account_id = ANY(%s)", (ids,)).fetchall())
        wrong = [i for i in ids if rows.get(i) != -charges.get(i, 0)]
        if report.ok and not wrong:
            return "yes"
        self.failures.extend(f.line() for f in report.findings)
        self.failures.extend(f"{i}: balance {rows.get(i)}, expected {-charges.get(i, 0)}" for i in wrong)
        return "NO"


def spread(ids: list[str], commands: int) -> dict[str, int]:
    return {account_id: len(range(index, commands, len(ids))) for index, account_id in enumerate(ids)}


async def baseline_rows(run: Run) -> None:
    """1 and 8 async connections in this process, and 8 processes with one connection each;
    the faster 8-connection row is the baseline every ratio is taken against."""
    rows = []
    for connections, processes in ((1, False), (8, False), (8, True)):
        url = run.stack.new_database(f"baseline_{connections}{'_processes' if processes else ''}")
        accounts = 8 * connections
        seconds, balances = await run_baseline(url, accounts, run.sizes.baseline, connections,
                                               processes=processes)
        expected = spread(list(balances), run.sizes.baseline)
        correct = "yes" if all(balances[i] == -expected[i] for i in balances) else "NO"
        how = f"{connections} processes" if processes else f"{connections} connection(s)"
        rows.append((connections, f"1. baseline, {how}",
                     f"{accounts} accounts, {run.sizes.baseline} commands, 1 command/txn",
                     run.sizes.baseline / seconds, correct))
    run.baseline_rate = max(rate for connections, _, _, rate, _ in rows if connections == 8)
    for connections, mode, shape, rate, correct in rows:
        chosen = connections == 8 and rate == run.baseline_rate
        run.add(mode, shape, f"{rate:,.0f} ops/s", "1.00x" if chosen else "", correct)


async def service_rows(run: Run, accounts: AccountClient) -> None:
    """Every mode with the defaults (local activities)."""
    sizes, client, tag = run.sizes, run.stack.temporal, uuid.uuid4().hex[:6]

    ids = await workloads.open_accounts(accounts, f"sig-{tag}", sizes.signal_accounts)
    result = await workloads.signals(client, ids, sizes.signals, senders=64)
    signal_rate = result.rate
    run.add("2. one command per signal", f"{len(ids)} accounts, {sizes.signals} signals, 64 senders",
            f"{result.rate:,.0f} ops/s", _ratio(result.rate, run.baseline_rate),
            await run.verify(ids, spread(ids, sizes.signals)))

    ingest = await workloads.signal_ingestion(client, run.stack.settings.task_queue,
                                              sizes.signal_accounts, sizes.signals, senders=64)
    run.add("6. dev server signal intake (no worker)",
            f"{sizes.signal_accounts} workflows, {sizes.signals} signals, 64 senders",
            f"{ingest.rate:,.0f} signals/s", f"mode 2 = {signal_rate / ingest.rate:.0%} of it")

    await batched_rows(run, accounts, "", sizes.batched)

    [hot] = await workloads.open_accounts(accounts, f"hot-{tag}", 1)
    result = await workloads.batched(accounts, [hot], sizes.hot, sizes.callers)
    run.add("4. one hot account", f"1 account, {sizes.hot} commands, {sizes.callers} callers",
            f"{result.rate:,.0f} ops/s", _ratio(result.rate, run.baseline_rate),
            await run.verify([hot], {hot: sizes.hot}))

    await latency_row(run, accounts, "")
    await floor_row(run)


async def comparison_rows(run: Run, accounts: AccountClient) -> None:
    """The same batched path and latency with regular activities, for the choice of default;
    the batched path again with short billing periods, for the cost of invoicing."""
    await batched_rows(run, accounts, " (regular activities)", run.sizes.compared, local_activities=False)
    await latency_row(run, accounts, " (regular activities)", local_activities=False)
    # The cost of invoicing: periods end, invoices are drafted and finalized and numbers drawn
    # while the load runs. Periods of 2 s: the row lasts about 10 s, so PT10S would end one at most.
    await batched_rows(run, accounts, " (PT2S billing periods)", run.sizes.compared,
                       billing_period="PT2S")


async def batched_rows(run: Run, accounts: AccountClient, label: str, commands: int, **options) -> None:
    sizes = run.sizes
    ids = await workloads.open_accounts(accounts, f"bat-{uuid.uuid4().hex[:6]}", sizes.batched_accounts,
                                        **options)
    result = await workloads.batched(accounts, ids, commands, sizes.callers)
    run.add(f"3. batching client{label}",
            f"{len(ids)} accounts, {commands} commands, {sizes.callers} callers",
            f"{result.rate:,.0f} ops/s", _ratio(result.rate, run.baseline_rate),
            await run.verify(ids, spread(ids, commands)))
    run.add(f"5. update latency under load{label}", f"the {sizes.callers} callers of mode 3",
            f"p50 {result.percentile(0.5) * 1000:.0f} ms, p99 {result.percentile(0.99) * 1000:.0f} ms")


async def latency_row(run: Run, accounts: AccountClient, label: str, **options) -> None:
    samples = run.sizes.latency_samples
    [idle] = await workloads.open_accounts(accounts, f"lat-{uuid.uuid4().hex[:6]}", 1, **options)
    result = await workloads.update_latency(run.stack.temporal, idle, samples)
    run.add(f"5. update latency, light load{label}", f"1 account, {samples} sequential updates",
            _percentiles(result), "", await run.verify([idle], {idle: samples}))


async def floor_row(run: Run) -> None:
    samples = run.sizes.latency_samples
    result = await workloads.update_floor(run.stack.temporal, run.stack.settings.task_queue, samples)
    run.add("6. dev server update round trip (no-op workflow)",
            f"1 workflow, {samples} sequential updates", _percentiles(result))


def _percentiles(result: workloads.Result) -> str:
    return f"p50 {result.percentile(0.5) * 1000:.1f} ms, p99 {result.percentile(0.99) * 1000:.1f} ms"


async def memory_rows(run: Run, accounts: AccountClient) -> None:
    sizes, worker_pid = run.sizes, run.stack.worker.process.pid
    [long] = await workloads.open_accounts(accounts, f"long-{uuid.uuid4().hex[:6]}", 1)
    before = rss_mib(worker_pid)
    result = await workloads.batched(accounts, [long], sizes.long_run, sizes.callers)
    after = rss_mib(worker_pid)
    run.add("7. worker RSS across a long run", f"1 account, {sizes.long_run} commands",
            f"{before:.0f} -> {after:.0f} MiB (peak {peak_rss_mib(worker_pid):.0f})",
            f"{result.rate:,.0f} ops/s", await run.verify([long], {long: sizes.long_run}))
    dev_server_peak = peak_rss_mib(run.stack.dev_server.process.pid)
    run.add("7. dev server peak RSS", "whole run", f"{dev_server_peak:.0f} MiB")
    await replay.load_rows(run, long)


def _ratio(rate: float, baseline: float) -> str:
    return f"{rate / baseline:.2f}x" if baseline else ""


def render(run: Run, quick: bool, seconds: float) -> None:
    table = Table(title=f"billing benchmark ({'quick' if quick else 'full'}, {seconds:.0f} s)")
    for column in ("mode", "shape", "result", "vs baseline (8 conn)", "correct"):
        table.add_column(column)
    for row in run.rows:
        table.add_row(row.mode, row.shape, row.value, row.ratio, row.correct)
    console = Console(width=160)
    console.print(table)
    console.print(f"durability: {run.stack.durability()}; machine: {os.cpu_count()} cores; "
                  f"batches: up to 1,000 commands per post_batch and per store call; "
                  f"one batch in flight per account; local activities unless said")


async def main_async(args: argparse.Namespace) -> int:
    sizes, started = Sizes.of(args.quick), time.perf_counter()
    async with running_stack() as stack:
        run = Run(stack, sizes)
        accounts = AccountClient(stack.temporal, stack.settings.task_queue)
        await baseline_rows(run)
        await service_rows(run, accounts)
        await comparison_rows(run, accounts)
        await memory_rows(run, accounts)
        replay.fold_row(run, sizes.fold)
        await replay.replay_rows(run, sizes.replay_accounts, sizes.replay_events)
        await replay.feed_cost_rows(run, accounts, sizes.batched)
        render(run, args.quick, time.perf_counter() - started)
    for failure in run.failures:
        print(f"WRONG: {failure}", file=sys.stderr)
    return 1 if run.failures or any(row.correct == "NO" for row in run.rows) else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run with small sizes")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip finalization: see FACTS.md on the Temporal client's exit abort
