"""The relay's speed: ``python -m bench.relay [--events N] [--samples M]``.

Starts its own Kafka broker (one node) and embedded Postgres (fsync on), fills the log with N
events of 100 accounts, and measures, in one run:

- throughput from the feed into Kafka, acknowledged (the relay in this process, from the start
  of the log until its checkpoint is committed past the last event), at batches of 500 and 50
  events per Kafka transaction; beside it, the baselines without the feed: the same messages
  from a plain idempotent producer, and from a transactional one in the relay's batches;
- the delay from append (the event's commit in Postgres) to a read_committed consumer, for M
  events appended one at a time, 20 a second; beside it, the same consumer's delay for one
  message produced and committed in a Kafka transaction directly.

Prints one table. Speed is reported, never asserted; a wrong count makes the run fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from activities.db import migrate
from bench.kafka_baseline import PACE, WARM_UP, Arrivals, kafka_delays, produce, settings
from bench.workloads import Result
from devstack.kafka import KafkaBroker, start_kafka
from devstack.postgres import start_postgres
from projections import feed
from relay.messages import Message, Routes, messages
from relay.runner import Relay

ACCOUNTS = 100


def fill_log(url: str, events: int) -> None:
    """``events`` FUND_ADDED events of ``ACCOUNTS`` accounts, 1,000 per transaction."""
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, events, 1_000):
            conn.execute(
                "INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id)"
                " SELECT gen_random_uuid(), 'acct-' || (g %% %(n)s), g / %(n)s + 1, 'FUND_ADDED',"
                " '{\"amount\": 100, \"description\": \"bench\"}', 'bench-' || g"
                " FROM generate_series(%(first)s::int, %(last)s::int) g",
                {"n": ACCOUNTS, "first": start, "last": min(events, start + 1_000) - 1})


async def feed_messages(url: str, routes: Routes) -> list[Message]:
    """The messages the relay sends for the whole log, made as it makes them."""
    out: list[Message] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        at = feed.START
        while events := await feed.read(conn, at, 5_000):
            out += [message for event in events for message in messages(event, routes)]
            at = feed.last(events)
    return out


async def relay_seconds(servers: str, url: str, events: int, batch: int) -> float:
    """Seconds for a new relay to publish the whole log (from ready to its last commit)."""
    relay, stop = Relay(settings(servers, batch), url), asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), 120)
    started = time.perf_counter()
    while relay.published < events:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - started
    stop.set()
    await task
    assert relay.published == events, relay.published
    return seconds


async def append_delays(servers: str, url: str, samples: int) -> Result:
    """Append one event at a time with the relay running; delay from commit to arrival."""
    kafka = settings(servers, 500)
    relay, stop = Relay(kafka, url), asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), 120)
    arrivals = await asyncio.to_thread(Arrivals, servers, kafka.account_events_topic)
    committed: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for sample in range(WARM_UP + samples):
            event_id = str(uuid.uuid4())
            await conn.execute(
                "INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id)"
                " VALUES (%s, 'latency', %s, 'FUND_ADDED', '{\"amount\": 1}', %s)",
                (event_id, sample + 1, f"lat-{sample}"))
            if sample >= WARM_UP:
                committed[event_id] = time.perf_counter()
            await asyncio.sleep(PACE)
    await asyncio.to_thread(arrivals.wait_for, WARM_UP + samples)
    stop.set()
    await task
    by_id = {json.loads(value)["event_id"]: at for value, at in arrivals.seen.items()}
    delays = [by_id[event_id] - at for event_id, at in committed.items()]
    return Result(sum(delays), samples, delays)


@dataclass(frozen=True)
class Measured:
    events: int
    raw: float  # seconds: plain idempotent producer, the same messages
    in_transactions: float  # seconds: transactional producer, the relay's batches of 500
    relay_500: float
    relay_50: float
    direct: Result  # delays: one message per Kafka transaction
    through_relay: Result  # delays: append -> relay -> consumer

    def rows(self) -> list[tuple[str, str, str]]:
        """(path, value, ratio against the baseline of its kind) for the table."""
        def rate(seconds: float) -> tuple[str, str]:
            return f"{self.events / seconds:,.0f} events/s", f"{seconds / self.raw:.2f}x"

        def ms(result: Result) -> str:
            return f"p50 {result.percentile(0.5) * 1000:.1f} ms, p99 {result.percentile(0.99) * 1000:.1f} ms"

        return [
            ("plain idempotent producer, same messages (baseline)", *rate(self.raw)),
            ("transactional producer, 500 per transaction + checkpoint", *rate(self.in_transactions)),
            ("relay: feed -> Kafka, 500 per transaction", *rate(self.relay_500)),
            ("relay: feed -> Kafka, 50 per transaction", *rate(self.relay_50)),
            ("delay: Kafka commit -> consumer (baseline)", ms(self.direct), "1.00x"),
            ("delay: Postgres append -> relay -> consumer", ms(self.through_relay),
             f"{self.through_relay.percentile(0.5) / self.direct.percentile(0.5):.2f}x (p50)"),
        ]


async def measure(events: int, samples: int, say: Callable[[str], None]) -> Measured:
    """Start a broker and Postgres of its own, run every measurement, stop them."""
    root = Path(tempfile.mkdtemp(prefix="billing-bench-relay-"))
    root.chmod(0o755)  # the embedded Postgres runs as its own user
    broker: KafkaBroker | None = None
    database = start_postgres(root / "postgres", "billing")
    try:
        broker = await asyncio.to_thread(start_kafka, root / "kafka")
        servers = broker.bootstrap_servers
        await migrate(database.owner_url)
        await asyncio.to_thread(fill_log, database.admin_url, events)
        say(f"log filled: {events} events of {ACCOUNTS} accounts")
        batch = await feed_messages(database.url, Routes("unused"))
        raw = await asyncio.to_thread(produce, servers, batch, transactional_batch=None)
        in_transactions = await asyncio.to_thread(produce, servers, batch, transactional_batch=500)
        relay_500 = await relay_seconds(servers, database.url, events, 500)
        relay_50 = await relay_seconds(servers, database.url, events, 50)
        say("throughput measured")
        direct = await asyncio.to_thread(kafka_delays, servers, samples)
        through_relay = await append_delays(servers, database.url, samples)
    finally:
        if broker is not None:
            broker.stop()
        database.stop()
        shutil.rmtree(root, ignore_errors=True)
    return Measured(events, raw, in_transactions, relay_500, relay_50, direct, through_relay)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="events in the log (default 50,000)")
    parser.add_argument("--samples", type=int, default=200, help="appends timed one by one (default 200)")
    parser.add_argument("--quick", action="store_true", help="5,000 events and 50 samples")
    args = parser.parse_args()
    events, samples = (5_000, 50) if args.quick else (args.events, args.samples)
    rows = asyncio.run(measure(events, samples, lambda line: print(f"  {line}", flush=True))).rows()
    print(f"relay, {events} events of {ACCOUNTS} accounts; one Kafka node (acks=all), Postgres fsync on; "
          f"consumer read_committed, fetch.wait.max.ms=50; {samples} appends 1 per {PACE * 1000:.0f} ms")
    width = max(len(row[0]) for row in rows)
    print(f"{'path':{width}}  {'value':34}  ratio (time / baseline)")
    for name, value, ratio in rows:
        print(f"{name:{width}}  {value:34}  {ratio}")


if __name__ == "__main__":
    main()
