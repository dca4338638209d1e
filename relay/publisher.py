"""The relay's Kafka side: one transactional producer that publishes a batch of the feed and the
checkpoint after it in one Kafka transaction, and reads that checkpoint back when it starts.

Exactly once, as a read_committed consumer sees it (docs/decisions.md, "The relay publishes
exactly once"):

1. ``open`` creates the producer with the relay's fixed ``transactional.id`` and calls
   ``init_transactions``: the broker completes or aborts any transaction an earlier instance
   left open and fences that instance, whose later writes are refused.
2. Only then is the checkpoint read (read_committed): nothing of ours is open any more, so the
   last committed checkpoint is the whole truth about what was published.
3. ``publish`` sends the next events of the feed and the checkpoint that covers them in one
   transaction. A read_committed consumer sees all of it or none of it.

A crash anywhere leaves a committed prefix of the feed and a checkpoint that says exactly how
long it is; the next start goes on from there. The blocking calls here run in threads
(``asyncio.to_thread``), the producer used by one thread at a time.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from projections.feed import FeedEvent
from relay.errors import KafkaUnavailable, RelayFenced, RelaySetupError
from relay.messages import Checkpoint, Routes, messages
from relay.settings import KafkaSettings
from relay.topics import TIMEOUT, ensure_topics, quiet

TRANSACTION_TIMEOUT_MS = 60_000
"""How long the broker keeps a transaction open without its producer, before it aborts it."""
CHECKPOINT_TAIL = 200
"""Offsets before the end of the checkpoint topic read first; the whole topic if ours is not there."""
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
           KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}

log = logging.getLogger("billing.relay.kafka")


class Publisher:
    """A transactional producer for one relay. ``open`` before ``publish``; after any error,
    ``close`` and ``open`` again (a new producer, and the checkpoint read afresh)."""

    def __init__(self, settings: KafkaSettings, routes: Routes, *, timeout: float = TIMEOUT) -> None:
        self.settings, self.routes, self.timeout = settings, routes, timeout
        self.servers = settings.require_bootstrap_servers()
        self._producer: Producer | None = None
        self._errors_said: set[int] = set()

    def open(self) -> Checkpoint | None:
        """Make the topics if missing, fence earlier instances, and return the last committed
        checkpoint (None: nothing was ever published)."""
        self.close()
        ensure_topics(self.servers, self.routes, self.settings, self.timeout)
        producer = Producer(self._config())
        try:
            _call(lambda: producer.init_transactions(self.timeout), "initialising transactions")
        except BaseException:
            _discard(producer)
            raise
        self._producer = producer
        return read_checkpoint(self.servers, self.settings.checkpoints_topic, self.settings.relay_id,
                               self.timeout)

    def publish(self, events: Sequence[FeedEvent], checkpoint: Checkpoint) -> Checkpoint:
        """Publish ``events`` (the feed's next ones after ``checkpoint``) and the checkpoint after
        them in one transaction; return that checkpoint once committed."""
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable("the producer is not open")
        after = checkpoint.after(list(events))

        def transaction() -> None:
            producer.begin_transaction()
            for event in events:
                for message in messages(event, self.routes):
                    producer.produce(message.topic, value=message.value, key=message.key)
            producer.produce(self.settings.checkpoints_topic, value=after.encode(),
                             key=self.settings.relay_id.encode())
            producer.commit_transaction(self.timeout)

        _call(transaction, f"publishing {len(events)} events")
        self._errors_said.clear()
        return after

    def close(self) -> None:
        """Drop the producer. An open transaction is aborted here if the broker answers, else
        by the next ``init_transactions`` (or the broker's transaction timeout)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            _discard(producer)

    def _config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.servers,
            "transactional.id": self.settings.relay_id,
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            "message.timeout.ms": TRANSACTION_TIMEOUT_MS,
            # Java's default partitioner, so that any producer of these keys agrees with us on
            # an account's partition (librdkafka's own default hashes differently).
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "queue.buffering.max.messages": max(100_000, 4 * self.settings.relay_batch + 16),
            "logger": quiet,
            "error_cb": self._on_error,
        }

    def _on_error(self, error: KafkaError) -> None:
        # Called on every failed attempt while a broker is away: each kind once, until a commit.
        if error.code() not in self._errors_said:
            self._errors_said.add(error.code())
            log.warning("Kafka: %s", error.str())


def _call(action: Any, doing: str) -> None:
    """Run ``action``; turn Kafka's errors into ``RelayFenced`` or ``KafkaUnavailable``."""
    try:
        action()
    except KafkaException as exception:
        error = exception.args[0] if exception.args and isinstance(exception.args[0], KafkaError) else None
        if error is not None and error.code() in _FENCED:
            raise RelayFenced(f"another relay with the same transactional.id took over while "
                              f"{doing}: {error.str()}") from None
        why = error.str() if error is not None else str(exception)
        raise KafkaUnavailable(f"{doing}: {why}") from None
    except BufferError as error:  # the local queue is full: the broker is not taking messages
        raise KafkaUnavailable(f"{doing}: {error}") from None


def _discard(producer: Producer) -> None:
    # No transaction open, or no broker: then the next init_transactions aborts it.
    with contextlib.suppress(KafkaException):
        producer.abort_transaction(1)
    producer.purge()
    producer.flush(0)


def read_checkpoint(servers: str, topic: str, relay_id: str, timeout: float = TIMEOUT) -> Checkpoint | None:
    """The last committed checkpoint of ``relay_id`` in ``topic`` (read_committed), or None.
    Reads the last ``CHECKPOINT_TAIL`` offsets first; the whole partition if they hold none of ours."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"billing-relay-{uuid.uuid4().hex[:12]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True, "logger": quiet})
    try:
        low, high = _watermarks(consumer, TopicPartition(topic, 0), timeout)
        for start in dict.fromkeys((max(low, high - CHECKPOINT_TAIL), low)):
            found = _last_of(consumer, TopicPartition(topic, 0, start), relay_id.encode(), timeout)
            if found is not None:
                return found
        return None
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, partition: TopicPartition, timeout: float) -> tuple[int, int]:
    """The partition's first and last offsets, retried within ``timeout`` (a new topic's leader)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=timeout, cached=False)
            return int(low), int(high)
        except KafkaException as exception:
            error = exception.args[0]
            if not error.retriable() or time.monotonic() > deadline:
                raise KafkaUnavailable(f"reading the end of {partition.topic}: {error.str()}") from None
        time.sleep(0.1)


def _last_of(consumer: Consumer, start: TopicPartition, key: bytes, timeout: float) -> Checkpoint | None:
    """The last checkpoint with ``key`` from ``start`` up to the partition's stable end."""
    consumer.assign([start])
    last: bytes | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if (error := message.error()) is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None if last is None else _decode(last, start.topic)
            if error.fatal() or not error.retriable():
                raise KafkaUnavailable(f"reading {start.topic}: {error.str()}")
            continue
        if message.key() == key and (value := message.value()) is not None:
            last = value
    raise KafkaUnavailable(f"reading {start.topic}: no end within {timeout:g} s")


def _decode(raw: bytes, topic: str) -> Checkpoint:
    try:
        return Checkpoint.decode(raw)
    except ValueError as error:  # going on from a guess could skip or repeat events
        raise RelaySetupError(f"{topic}: {error}; remove that record or use another KAFKA_RELAY_ID") from None
