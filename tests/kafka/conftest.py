"""A real Apache Kafka broker for the session (``devstack.kafka``), and a fresh topic per test.

The broker's jars come from the machine's cache (``devstack.kafka_jars``; Maven fetches them
the first time). Without Java 17+ these tests fail with the reason instead of skipping: CI's
machines have Java, and a skipped delivery test proves nothing.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.kafka import KafkaBroker, start_kafka


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One broker for the session. A test may restart it (same data dir, same ports)."""
    root = Path(tempfile.mkdtemp(prefix="billing-test-kafka-"))
    broker = start_kafka(root / "kafka")
    yield broker
    broker.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    """A new topic with one partition, for this test only."""
    return create_topic(kafka_broker.bootstrap_servers, partitions=1)


def create_topic(servers: str, partitions: int) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": servers})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    return name
