"""The Kafka baselines of ``bench.relay``, measured without the feed or Postgres: the relay's
messages from a plain idempotent producer and from a transactional one, and the delay from one
Kafka commit to a read_committed consumer (``Arrivals``, which ``bench.relay`` uses too)."""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.workloads import Result
from relay.messages import Message, Routes
from relay.settings import KafkaSettings
from relay.topics import ensure_topics

PACE = 0.05  # seconds between appends in the delay test
WARM_UP = 5  # appends sent, and not timed, before the timed ones: new topics, first fetches
CONSUMER = {"isolation.level": "read_committed", "enable.auto.commit": False, "fetch.wait.max.ms": 50}


def settings(servers: str, batch: int) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    return KafkaSettings(servers, f"bench-events-{tag}", f"bench-invoices-{tag}", f"bench-checkpoints-{tag}",
                         f"bench-relay-{tag}", relay_batch=batch)


def produce(servers: str, batch: list[Message], *, transactional_batch: int | None) -> float:
    """Seconds to send ``batch`` to a fresh topic, acknowledged: idempotent, or in transactions."""
    kafka = settings(servers, transactional_batch or 1)
    ensure_topics(servers, Routes(kafka.account_events_topic), kafka)
    config = {"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5,
              "partitioner": "murmur2_random", "queue.buffering.max.messages": len(batch) + 10}
    if transactional_batch:
        config["transactional.id"] = kafka.relay_id
    producer = Producer(config)
    started = time.perf_counter()
    if not transactional_batch:
        for message in batch:
            producer.produce(kafka.account_events_topic, value=message.value, key=message.key)
        assert producer.flush(120) == 0
        return time.perf_counter() - started
    producer.init_transactions(30)
    started = time.perf_counter()
    for first in range(0, len(batch), transactional_batch):
        producer.begin_transaction()
        for message in batch[first:first + transactional_batch]:
            producer.produce(kafka.account_events_topic, value=message.value, key=message.key)
        producer.produce(kafka.checkpoints_topic, value=b"{}", key=kafka.relay_id.encode())
        producer.commit_transaction(30)
    return time.perf_counter() - started


class Arrivals:
    """A read_committed consumer in a thread, noting when each message (by value) arrives."""

    def __init__(self, servers: str, topic: str) -> None:
        self.seen: dict[bytes, float] = {}
        self.consumer = Consumer({"bootstrap.servers": servers, "group.id": f"bench-{uuid.uuid4().hex}",
                                  **CONSUMER})
        partitions = self.consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = [self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in partitions]
        self.consumer.assign([TopicPartition(topic, p, end) for p, end in zip(partitions, ends, strict=True)])
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            message = self.consumer.poll(0.05)
            if message is not None and message.error() is None and (value := message.value()):
                self.seen[bytes(value)] = time.perf_counter()
        self.consumer.close()

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            assert time.monotonic() < deadline, f"{len(self.seen)} of {count} arrived"
            time.sleep(0.01)
        self.done.set()
        self.thread.join(10)


def kafka_delays(servers: str, samples: int) -> Result:
    """One message per Kafka transaction, produced and committed directly; delay to arrival."""
    kafka = settings(servers, 1)
    ensure_topics(servers, Routes(kafka.account_events_topic), kafka)
    producer = Producer({"bootstrap.servers": servers, "transactional.id": kafka.relay_id, "linger.ms": 5})
    producer.init_transactions(30)
    arrivals = Arrivals(servers, kafka.account_events_topic)
    sent: dict[bytes, float] = {}
    for sample in range(WARM_UP + samples):
        value = f'{{"sample": {sample}}}'.encode()
        if sample >= WARM_UP:
            sent[value] = time.perf_counter()
        producer.begin_transaction()
        producer.produce(kafka.account_events_topic, value=value, key=b"latency")
        producer.commit_transaction(30)
        time.sleep(PACE)
    arrivals.wait_for(WARM_UP + samples)
    delays = [arrivals.seen[value] - at for value, at in sent.items()]
    return Result(sum(delays), samples, delays)
