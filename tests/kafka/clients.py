"""Small producer and consumer helpers for the Kafka tests, on confluent-kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

Record = tuple[bytes | None, bytes]
"""(key, value) of one message."""


def transactional_producer(servers: str, transactional_id: str | None = None) -> Producer:
    producer = Producer({"bootstrap.servers": servers,
                         "transactional.id": transactional_id or f"test-{uuid.uuid4().hex[:12]}"})
    producer.init_transactions(30)
    return producer


def produce_in_transaction(producer: Producer, topic: str, records: Sequence[Record], *,
                           commit: bool) -> None:
    """Send ``records`` in one transaction, then commit it or abort it."""
    producer.begin_transaction()
    for key, value in records:
        producer.produce(topic, value=value, key=key)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.flush(30)  # the messages reach the log before the abort marker does
        producer.abort_transaction(30)


def read_partition(servers: str, topic: str, *, isolation: str, timeout: float = 30,
                   partition: int = 0) -> list[Record]:
    """Every message of ``topic`` [``partition``] up to its end as ``isolation`` sees it.

    "read_committed" ends at the last stable offset, "read_uncommitted" at the high watermark."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"test-{uuid.uuid4().hex[:12]}",
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return records
                raise AssertionError(f"consumer error: {error.str()}")
            value = message.value()
            assert value is not None
            records.append((message.key(), value))
    finally:
        consumer.close()
    raise AssertionError(f"no end of {topic} [{partition}] within {timeout} s; read {records}")
