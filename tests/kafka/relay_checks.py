"""What the relay's tests hold the topic against: every message of a topic as a read_committed
consumer sees it, and a count of what is duplicated, missing or out of version order compared
with the event log."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


@dataclass(frozen=True)
class Received:
    """One message of the topic: where it was, its key, and its value as JSON."""

    partition: int
    offset: int
    key: str
    value: dict[str, Any]


def read_topic(servers: str, topic: str, *, timeout: float = 60) -> list[Received]:
    """Every message of every partition of ``topic`` up to its stable end (read_committed), in
    partition then offset order."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"test-{uuid.uuid4().hex[:12]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        received: list[Received] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"no end of {topic} within {timeout} s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error, partition, offset = message.error(), message.partition(), message.offset()
            assert partition is not None
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error.str()
                at_end.add(partition)
                continue
            key, value = message.key(), message.value()
            assert key is not None and value is not None and offset is not None
            received.append(Received(partition, offset, bytes(key).decode(), json.loads(value)))
        return sorted(received, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


@dataclass
class Verdict:
    """The topic against the log. ``duplicated``: events received more than once; ``missing``:
    events of the log never received; ``out_of_order``: messages whose version is lower than
    that of an earlier message of the same account; ``misplaced``: an account's messages in
    more than one partition, or keyed by another account; ``unknown``: messages of no event."""

    events: int
    received: int
    duplicated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicated or self.missing or self.out_of_order or self.misplaced or self.unknown)

    def describe(self) -> str:
        return (f"events={self.events} received={self.received} duplicated={len(self.duplicated)} "
                f"missing={len(self.missing)} out_of_order={len(self.out_of_order)} "
                f"misplaced={len(self.misplaced)} unknown={len(self.unknown)}")

    def assert_clean(self) -> None:
        assert self.clean, (f"{self.describe()}\nduplicated: {self.duplicated[:10]}\nmissing: "
                            f"{self.missing[:10]}\nout of order: {self.out_of_order[:10]}\n"
                            f"misplaced: {self.misplaced[:10]}\nunknown: {self.unknown[:10]}")


def judge(log: Iterable[tuple[str, int, str]], received: Iterable[Received]) -> Verdict:
    """Compare ``log`` ((account_id, version, event_id) of every event) with the messages."""
    expected = {event_id: (account_id, version) for account_id, version, event_id in log}
    messages = list(received)
    verdict = Verdict(events=len(expected), received=len(messages))
    seen: Counter[str] = Counter()
    last_version: dict[str, int] = defaultdict(int)
    partition_of: dict[str, int] = {}
    for message in messages:  # partition then offset order: each account's own order
        event_id = str(message.value.get("event_id"))
        seen[event_id] += 1
        if event_id not in expected:
            verdict.unknown.append(f"{message.partition}@{message.offset}: {event_id}")
            continue
        account_id, version = expected[event_id]
        where = f"{account_id} v{version} at {message.partition}@{message.offset}"
        partition = partition_of.setdefault(account_id, message.partition)
        if message.key != account_id or partition != message.partition:
            verdict.misplaced.append(f"{where} (key {message.key})")
        if seen[event_id] > 1:
            verdict.duplicated.append(where)
            continue
        if version < last_version[account_id]:  # a gap is counted as missing, not here
            verdict.out_of_order.append(f"{where} after v{last_version[account_id]}")
        last_version[account_id] = max(last_version[account_id], version)
    verdict.missing = [f"{account_id} v{version}" for event_id, (account_id, version) in expected.items()
                       if not seen[event_id]]
    return verdict
