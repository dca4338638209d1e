"""The relay in this process, against a real broker and a real Postgres: what it publishes, that
it goes on from its checkpoint, that a relay left behind is fenced and its open transaction
never seen, routing by event type (a real account's invoices, through the worker), and a
checkpoint that belongs to another database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import psycopg
import pytest
from confluent_kafka import KafkaException
from temporalio.client import Client
from temporalio.worker import Worker

from client import AccountClient
from devstack.kafka import KafkaBroker
from projections import feed
from projections.feed import FeedPosition
from relay.errors import RelayFenced
from relay.messages import INVOICE_TYPES, Checkpoint, Routes
from relay.publisher import Publisher, read_checkpoint
from relay.runner import CheckpointAhead, Relay
from relay.settings import KafkaSettings
from tests.kafka.clients import transactional_producer
from tests.kafka.relay_checks import judge, read_topic
from workflows.interface import CLOSE_PERIOD, PeriodClosed

pytestmark = pytest.mark.asyncio
WAIT = 60.0


def relay_settings(servers: str, **overrides: object) -> KafkaSettings:
    """Topics and a relay id of this test's own."""
    tag = uuid.uuid4().hex[:10]
    fields: dict[str, object] = dict(
        bootstrap_servers=servers, account_events_topic=f"test-events-{tag}",
        invoices_topic=f"test-invoices-{tag}", checkpoints_topic=f"test-checkpoints-{tag}",
        relay_id=f"test-relay-{tag}", partitions=3, relay_batch=7)
    fields.update(overrides)
    return KafkaSettings(**fields)  # type: ignore[arg-type]


async def append(db_url: str, events: Iterable[tuple[str, int, str, dict[str, object]]],
                 schema_version: int = 1) -> None:
    """Insert ``(account_id, version, event_type, payload)`` rows, one transaction each."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for account_id, version, event_type, payload in events:
            await conn.execute(
                "INSERT INTO account_events (event_id, account_id, version, event_type, payload,"
                " command_id, schema_version) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (uuid.uuid4(), account_id, version, event_type, json.dumps(payload),
                 f"c-{uuid.uuid4().hex}" if event_type != "ACCOUNT_CREATED" else None, schema_version))


def funds(account_id: str, versions: range) -> list[tuple[str, int, str, dict[str, object]]]:
    return [(account_id, version, "FUND_ADDED", {"amount": version * 100, "description": f"v{version}"})
            for version in versions]


async def log_of(db_url: str) -> list[tuple[str, int, str]]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cursor = await conn.execute("SELECT account_id, version, event_id::text FROM account_events")
        return await cursor.fetchall()


@asynccontextmanager
async def running(relay: Relay) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def published(relay: Relay, task: asyncio.Task[None], count: int) -> None:
    """Wait until ``relay`` has published ``count`` events since it started (or failed)."""
    async with asyncio.timeout(WAIT):
        while relay.published < count:
            if task.done():
                task.result()  # its error, if it failed
                raise AssertionError(f"the relay stopped after {relay.published} events")
            await asyncio.sleep(0.05)


async def test_every_event_once_keyed_by_account_in_version_order(kafka_broker: KafkaBroker,
                                                                   worker_db_url: str, db_url: str) -> None:
    settings = relay_settings(kafka_broker.bootstrap_servers)
    created = {"account_id": "acme", "currency": "USD", "overdraft_limit": 0}
    await append(db_url, [("acme", 1, "ACCOUNT_CREATED", created)])  # stored as schema version 1
    await append(db_url, [*funds("acme", range(2, 12)), *funds("beta", range(1, 20)),
                          *funds("gamma", range(1, 4))])
    relay = Relay(settings, worker_db_url)  # the worker's role: SELECT on the log is enough

    async with running(relay) as task:
        await published(relay, task, 33)
        lag = await relay.lag()

    received = read_topic(settings.require_bootstrap_servers(), settings.account_events_topic)
    judge(await log_of(db_url), received).assert_clean()
    assert lag.events == 0 and relay.status().checkpoint.events == 33
    first = next(message for message in received if message.value["type"] == "ACCOUNT_CREATED")
    assert first.key == "acme"
    recorded_at = datetime.fromisoformat(first.value.pop("recorded_at"))
    assert recorded_at.tzinfo is not None and abs(datetime.now(UTC) - recorded_at).total_seconds() < 600
    uuid.UUID(first.value.pop("event_id"))
    # Upcast to today's shape, and labelled with today's schema version.
    assert first.value == {"account_id": "acme", "version": 1, "type": "ACCOUNT_CREATED", "schema_version": 2,
                           "payload": {**created, "billing_period": "monthly",
                                       "opened_at": recorded_at.isoformat()}}
    assert {message.partition for message in received if message.key == "beta"} != set()
    assert read_topic(settings.require_bootstrap_servers(), settings.invoices_topic) == []


async def test_a_new_relay_goes_on_from_the_committed_checkpoint(kafka_broker: KafkaBroker,
                                                                 worker_db_url: str, db_url: str) -> None:
    settings = relay_settings(kafka_broker.bootstrap_servers)
    await append(db_url, funds("acme", range(1, 16)))
    first = Relay(settings, worker_db_url)
    async with running(first) as task:
        await published(first, task, 15)
    await append(db_url, funds("acme", range(16, 21)) + funds("beta", range(1, 4)))

    second = Relay(settings, worker_db_url)
    async with running(second) as task:
        await published(second, task, 8)
        await asyncio.sleep(0.5)  # anything more it would publish, it publishes now

    assert second.published == 8
    received = read_topic(settings.require_bootstrap_servers(), settings.account_events_topic)
    judge(await log_of(db_url), received).assert_clean()
    servers = settings.require_bootstrap_servers()
    stored = read_checkpoint(servers, settings.checkpoints_topic, settings.relay_id)
    assert stored is not None and stored.events == 23 and stored == second.checkpoint


async def test_a_relay_left_behind_is_fenced_and_its_open_transaction_never_seen(
        kafka_broker: KafkaBroker, worker_db_url: str, db_url: str) -> None:
    settings = relay_settings(kafka_broker.bootstrap_servers)
    servers = settings.require_bootstrap_servers()
    await append(db_url, funds("acme", range(1, 6)))
    old = Publisher(settings, Routes.of(settings))
    assert await asyncio.to_thread(old.open) is None
    # The old relay stalls in the middle of a transaction (a pause, not a crash): its message
    # and a checkpoint far ahead reach the log, uncommitted.
    zombie = transactional_producer(servers, settings.relay_id)
    zombie.begin_transaction()
    zombie.produce(settings.account_events_topic, key=b"acme", value=b'{"event_id": "zombie"}')
    zombie.produce(settings.checkpoints_topic, key=settings.relay_id.encode(),
                   value=Checkpoint(FeedPosition(10**12, 1), 999).encode())
    zombie.flush(30)

    relay = Relay(settings, worker_db_url)  # a new relay with the same id takes over
    async with running(relay) as task:
        await published(relay, task, 5)
    with pytest.raises(KafkaException):
        zombie.commit_transaction(30)
    async with await psycopg.AsyncConnection.connect(worker_db_url, autocommit=True) as conn:
        events = await feed.read(conn, feed.START)
    with pytest.raises(RelayFenced):
        await asyncio.to_thread(old.publish, events, Checkpoint(feed.START))
    old.close()

    judge(await log_of(db_url), read_topic(servers, settings.account_events_topic)).assert_clean()


async def test_a_real_accounts_invoice_events_go_to_the_invoices_topic_as_well(
        kafka_broker: KafkaBroker, client: Client, task_queue: str, worker: Worker, worker_db_url: str,
        db_url: str) -> None:
    """The worker writes the events of a period closed and of a close that bills the last
    period; the relay sends all of them to the account events topic, and the invoice events to
    the invoices topic too."""
    accounts, account = AccountClient(client, task_queue, rpc_timeout=WAIT), f"inv-{uuid.uuid4().hex[:8]}"
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 1_000, command_id="f-1")
    await accounts.charge(account, 300, command_id="c-1")
    closed = await accounts.handle(account).execute_update(CLOSE_PERIOD, result_type=PeriodClosed)
    await accounts.charge(account, 700, command_id="c-2")  # a close with a balance needs a payout
    await accounts.close(account, command_id="bye", reason="left")
    log = await typed_log_of(db_url)
    types = [event_type for _, _, _, event_type in log]
    assert closed.number is not None and types == [
        "ACCOUNT_CREATED", "FUND_ADDED", "CHARGE_APPLIED", "INVOICE_DRAFTED", "INVOICE_FINALIZED",
        "CHARGE_APPLIED", "ACCOUNT_CLOSED", "INVOICE_DRAFTED", "INVOICE_FINALIZED"]

    settings = relay_settings(kafka_broker.bootstrap_servers)
    relay = Relay(settings, worker_db_url)  # the default routes
    async with running(relay) as task:
        await published(relay, task, len(log))

    servers = settings.require_bootstrap_servers()
    every = read_topic(servers, settings.account_events_topic)
    judge([row[:3] for row in log], every).assert_clean()
    invoices = read_topic(servers, settings.invoices_topic)
    judge([row[:3] for row in log if row[3] in INVOICE_TYPES], invoices).assert_clean()
    assert [m.value["type"] for m in invoices] == [t for t in types if t in INVOICE_TYPES]
    by_id = {m.value["event_id"]: m.value for m in every}
    assert [by_id[m.value["event_id"]] for m in invoices] == [m.value for m in invoices]
    assert invoices[1].value["payload"]["number"] == closed.number


async def test_refunds_payouts_and_credit_notes_are_routed_by_type(kafka_broker: KafkaBroker,
                                                                   worker_db_url: str, db_url: str) -> None:
    """Refunds and payouts stay with the account events; credit notes go to the invoices topic
    as well. (Rows written here, not by the worker: routing reads only the type.)"""
    settings = relay_settings(kafka_broker.bootstrap_servers)
    refund = {"amount": 100, "charge_id": "c-1", "charge_version": 3, "description": ""}
    note = {"number": "CN-2026-000001", "invoice_number": "INV-2026-000001", "invoice_sequence": 1,
            "amount": 100, "refund_id": "r-1"}
    paid_out = {"amount": 250, "reason": "sent by wire", "close_id": "bye"}
    await append(db_url, [*funds("acme", range(1, 3)), ("acme", 3, "REFUND_APPLIED", refund),
                          ("acme", 4, "CREDIT_NOTE_ISSUED", note), ("acme", 5, "BALANCE_PAID_OUT", paid_out),
                          *funds("beta", range(1, 3))])
    relay = Relay(settings, worker_db_url)
    async with running(relay) as task:
        await published(relay, task, 7)

    servers = settings.require_bootstrap_servers()
    judge(await log_of(db_url), read_topic(servers, settings.account_events_topic)).assert_clean()
    every = {m.value["type"]: m.value["payload"] for m in read_topic(servers, settings.account_events_topic)}
    assert (every["REFUND_APPLIED"], every["BALANCE_PAID_OUT"]) == (refund, paid_out)
    invoices = read_topic(servers, settings.invoices_topic)
    assert [(m.key, m.value["type"], m.value["version"], m.value["payload"]) for m in invoices] == [
        ("acme", "CREDIT_NOTE_ISSUED", 4, note)]


async def typed_log_of(db_url: str) -> list[tuple[str, int, str, str]]:
    """(account_id, version, event_id, event_type) of every event, in version order."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cursor = await conn.execute("SELECT account_id, version, event_id::text, event_type"
                                    " FROM account_events ORDER BY account_id, version")
        return await cursor.fetchall()


async def test_a_checkpoint_of_another_database_is_refused(kafka_broker: KafkaBroker,
                                                            worker_db_url: str, db_url: str) -> None:
    settings = relay_settings(kafka_broker.bootstrap_servers)
    await append(db_url, funds("acme", range(1, 3)))
    topics = Publisher(settings, Routes.of(settings))
    topics.open()  # makes the topics
    topics.close()
    other = transactional_producer(settings.require_bootstrap_servers(), f"{settings.relay_id}-writer")
    other.begin_transaction()
    other.produce(settings.checkpoints_topic, key=settings.relay_id.encode(),
                  value=Checkpoint(FeedPosition(10**15, 7), 12).encode())
    other.commit_transaction(30)

    relay = Relay(settings, worker_db_url)
    with pytest.raises(CheckpointAhead, match="another database"):
        await asyncio.wait_for(relay.run(asyncio.Event()), WAIT)
    assert read_topic(settings.require_bootstrap_servers(), settings.account_events_topic) == []
