"""The local broker serves what the relay needs: transactions that a read_committed consumer
sees only once committed, and messages that outlive a restart or a crash of the broker."""

from __future__ import annotations

import pytest

from devstack.kafka import KafkaBroker
from tests.kafka.clients import produce_in_transaction, read_partition, transactional_producer


def test_read_committed_sees_committed_transactions_only(kafka_broker: KafkaBroker, topic: str) -> None:
    servers = kafka_broker.bootstrap_servers
    producer = transactional_producer(servers)
    produce_in_transaction(producer, topic, [(b"acme", b"1"), (b"acme", b"2")], commit=True)
    produce_in_transaction(producer, topic, [(b"acme", b"aborted")], commit=False)
    produce_in_transaction(producer, topic, [(b"beta", b"3")], commit=True)

    committed = read_partition(servers, topic, isolation="read_committed")
    everything = read_partition(servers, topic, isolation="read_uncommitted")

    assert committed == [(b"acme", b"1"), (b"acme", b"2"), (b"beta", b"3")]
    # The aborted message is in the log: only the isolation level hides it.
    assert everything == [(b"acme", b"1"), (b"acme", b"2"), (b"acme", b"aborted"), (b"beta", b"3")]


def test_an_open_transaction_is_invisible_until_it_commits(kafka_broker: KafkaBroker, topic: str) -> None:
    servers = kafka_broker.bootstrap_servers
    producer = transactional_producer(servers)
    producer.begin_transaction()
    producer.produce(topic, value=b"pending")
    producer.flush(30)

    assert read_partition(servers, topic, isolation="read_uncommitted") == [(None, b"pending")]
    assert read_partition(servers, topic, isolation="read_committed") == []
    producer.commit_transaction(30)
    assert read_partition(servers, topic, isolation="read_committed") == [(None, b"pending")]


def test_messages_survive_a_restart(kafka_broker: KafkaBroker, topic: str) -> None:
    servers = kafka_broker.bootstrap_servers
    transactional_id = f"restart-{topic}"
    produce_in_transaction(transactional_producer(servers, transactional_id), topic,
                           [(b"k", b"before")], commit=True)

    kafka_broker.restart()  # SIGTERM: a controlled shutdown, then a start on the same data dir
    assert kafka_broker.bootstrap_servers == servers
    produce_in_transaction(transactional_producer(servers, transactional_id), topic,
                           [(b"k", b"after")], commit=True)

    assert read_partition(servers, topic, isolation="read_committed") == [(b"k", b"before"), (b"k", b"after")]


@pytest.mark.slow  # ~18 s: after a SIGKILL the broker needs twice as long to serve again
def test_committed_messages_survive_a_crash(kafka_broker: KafkaBroker, topic: str) -> None:
    servers = kafka_broker.bootstrap_servers
    transactional_id = f"crash-{topic}"
    produce_in_transaction(transactional_producer(servers, transactional_id), topic,
                           [(b"k", b"committed")], commit=True)
    producer = transactional_producer(servers, f"open-{topic}")
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"open at the crash")
    producer.flush(30)

    kafka_broker.kill()  # SIGKILL: the next start recovers the log and the transactions
    kafka_broker.restart()
    # The same transactional id again: its state outlived the crash, and the new producer works.
    produce_in_transaction(transactional_producer(servers, transactional_id), topic,
                           [(b"k", b"after")], commit=True)
    # The transaction that was open at the crash is never committed; once its producer is
    # fenced by a new one with its id, it is aborted, and read_committed never shows it.
    transactional_producer(servers, f"open-{topic}")

    assert read_partition(servers, topic, isolation="read_committed") == [
        (b"k", b"committed"), (b"k", b"after")]
