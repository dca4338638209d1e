"""The relay as a real process, SIGKILLed at random moments, while a real worker appends the
events of real accounts; the broker crashes and comes back once, Postgres restarts once. Then a
read_committed consumer reads the whole topic: every event of the log exactly once, each
account's events in version order in one partition.

``test_the_check_catches_an_at_least_once_relay`` runs the same scenario with a relay that
commits its checkpoint in a second transaction (``at_least_once_relay``) and expects the count
to find duplicates: the check can fail.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from devstack.kafka import KafkaBroker
from devstack.relay import RelayProcess, start_relay
from projections.feed import FeedPosition
from relay.publisher import read_checkpoint
from tests.faults.harness import Ledger, Load, Stack, fault_seed, settle
from tests.kafka.relay_checks import Verdict, judge, read_topic

RELAY_KILLS = 5
LOAD_CLIENTS = 4  # the machine also runs the broker, the dev server, Postgres, a worker and the relay
BATCH = 20  # events per Kafka transaction: many transactions, many moments to be killed in
CATCH_UP_TIMEOUT = 120.0
READY_TIMEOUT = 90.0
RESUMED = re.compile(r"resumes after .* \((\d+) events published before\)")


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="billing-relay-faults-"))
    root.chmod(0o755)  # the embedded Postgres runs as its own user and must reach its data
    services = Stack(root)
    try:
        yield services
    finally:
        await services.close()
        shutil.rmtree(root, ignore_errors=True)


class Relays:
    """The relay process of the scenario: killed and started again, every exit accounted for."""

    def __init__(self, env: dict[str, str], module: str) -> None:
        self.env, self.module = env, module
        self.current = self._start()
        self.crashed: list[str] = []
        self.earlier: list[RelayProcess] = []

    def _start(self) -> RelayProcess:
        return start_relay(self.env, echo=os.environ.get("BILLING_FAULT_VERBOSE") == "1", module=self.module)

    def kill_and_restart(self) -> None:
        if (code := self.current.process.poll()) is not None:  # it exited on its own
            self.crashed.append(f"exit {code}: " + "\n".join(list(self.current.recent)[-10:]))
        self.current.kill()
        self.earlier.append(self.current)
        self.current = self._start()

    def stop(self) -> int | None:
        return self.current.stop()

    def resumed_at(self) -> list[int]:
        """How many events each start found published before it: the kills' progress marks."""
        return [int(found.group(1)) for relay in [*self.earlier, self.current] for line in relay.recent
                if (found := RESUMED.search(line))]


async def test_every_event_exactly_once_through_kills_and_restarts(stack: Stack, kafka_broker: KafkaBroker,
                                                                   record_property) -> None:
    verdict, line = await scenario(stack, kafka_broker, "relay-exactly-once", "relay")
    record_property("fault_summary", line)
    verdict.assert_clean()


@pytest.mark.slow
async def test_the_check_catches_an_at_least_once_relay(stack: Stack, kafka_broker: KafkaBroker,
                                                        record_property) -> None:
    verdict, line = await scenario(stack, kafka_broker, "relay-at-least-once",
                                   "tests.kafka.at_least_once_relay")
    record_property("fault_summary", line)
    assert verdict.duplicated and not verdict.missing, verdict.describe()


async def scenario(stack: Stack, broker: KafkaBroker, name: str, module: str) -> tuple[Verdict, str]:
    """Load and faults, then the count; returns the verdict and the FAULTS line (printed)."""
    seed, faults, timings = fault_seed(), Counter[str](), {"stack_start": time.monotonic()}
    rng = random.Random(seed)
    await stack.start(workers=1)
    assert stack.postgres is not None
    started = time.monotonic()
    timings["stack_start"] = started - timings["stack_start"]
    tag = uuid.uuid4().hex[:10]
    env = dict(stack.workers.env if stack.workers else {}, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
               KAFKA_TOPIC_ACCOUNT_EVENTS=f"faults-events-{tag}",
               KAFKA_TOPIC_INVOICES=f"faults-invoices-{tag}",
               KAFKA_TOPIC_RELAY_CHECKPOINTS=f"faults-checkpoints-{tag}", KAFKA_RELAY_ID=f"faults-{tag}",
               KAFKA_RELAY_BATCH=str(BATCH))
    relays = Relays(env, module)
    try:
        await asyncio.to_thread(relays.current.wait_ready, READY_TIMEOUT)
        accounts = await stack.open_accounts("relay", 6)
        load = Load(stack, Ledger(), accounts, seed, prefix="relay", clients=LOAD_CLIENTS)
        await load.run_during(disturb(stack, broker, relays, rng, faults))
        loaded = time.monotonic()
        await settle(stack, accounts)  # the log is final: what the relay must have published
        await caught_up(stack.postgres.url, broker.bootstrap_servers, env)
        timings["load_and_faults"] = loaded - started
        timings["settle_and_catch_up"] = time.monotonic() - loaded
        stopped = await asyncio.to_thread(relays.stop)
    finally:
        relays.current.kill()
    log = await log_of(stack.postgres.url)
    verdict = judge(log, read_topic(broker.bootstrap_servers, env["KAFKA_TOPIC_ACCOUNT_EVENTS"]))
    kinds = ", ".join(f"{kind}={count}" for kind, count in sorted(faults.items()))
    line = (f"FAULTS scenario={name} seed={seed} events={verdict.events} received={verdict.received} "
            f"faults={faults.total()} ({kinds}) duplicated={len(verdict.duplicated)} "
            f"missing={len(verdict.missing)} out_of_order={len(verdict.out_of_order)} "
            f"misplaced={len(verdict.misplaced)} relay_started_after_events={relays.resumed_at()} "
            f"{' '.join(f'{phase}={seconds:.1f}s' for phase, seconds in timings.items())}")
    print(line, flush=True)
    assert relays.crashed == [] and stopped == 0, (relays.crashed, stopped)
    return verdict, line


async def disturb(stack: Stack, broker: KafkaBroker, relays: Relays, rng: random.Random,
                  faults: Counter[str]) -> None:
    """Kill the relay ``RELAY_KILLS`` times at random moments; crash the broker and restart
    Postgres once each, at random places among the kills. A relay is killed only once it
    publishes (then within two seconds): a relay killed while it starts has published nothing
    that a mistake could repeat."""
    assert stack.postgres is not None
    steps = ["relay-kill"] * RELAY_KILLS + ["broker-crash", "postgres-restart"]
    rng.shuffle(steps)
    for step in steps:
        await asyncio.to_thread(relays.current.wait_ready, READY_TIMEOUT)
        await asyncio.sleep(rng.uniform(0.0, 2.0))
        if step == "relay-kill":
            await asyncio.to_thread(relays.kill_and_restart)
        elif step == "broker-crash":
            await asyncio.to_thread(broker.kill)
            await asyncio.to_thread(broker.restart, 120)
        else:
            await asyncio.to_thread(stack.postgres.stop, "fast")
            await asyncio.to_thread(stack.postgres.start)
        faults[step] += 1


async def caught_up(db_url: str, servers: str, env: dict[str, str]) -> None:
    """Wait until the relay's committed checkpoint is the last event of the log."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cursor = await conn.execute("SELECT transaction_id::text AS xid, position FROM account_events"
                                    " ORDER BY transaction_id DESC, position DESC LIMIT 1")
        row = await cursor.fetchone()
    assert row is not None
    last = FeedPosition(int(row[0]), row[1])
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while True:
        checkpoint = await asyncio.to_thread(read_checkpoint, servers, env["KAFKA_TOPIC_RELAY_CHECKPOINTS"],
                                             env["KAFKA_RELAY_ID"])
        if checkpoint is not None and checkpoint.at == last:
            return
        assert time.monotonic() < deadline, f"the relay is at {checkpoint}, the log at {last}"
        await asyncio.sleep(0.5)


async def log_of(db_url: str) -> list[tuple[str, int, str]]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cursor = await conn.execute("SELECT account_id, version, event_id::text FROM account_events")
        return await cursor.fetchall()
