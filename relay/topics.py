"""The relay's topics: made if missing (the event topics with ``settings.partitions`` each, the
checkpoint topic compacted with one partition), and the checkpoint topic's shape checked."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from relay.errors import KafkaUnavailable, RelaySetupError
from relay.messages import Routes
from relay.settings import KafkaSettings

TIMEOUT = 30.0
"""Seconds for one blocking Kafka call (a commit, an init, a metadata request)."""
CHECKPOINT_TOPIC_CONFIG = {
    # Small segments: compaction never touches the active one, and should keep a few records
    # per relay rather than one per transaction ever committed.
    "cleanup.policy": "compact", "segment.bytes": str(1024 * 1024), "segment.ms": str(3_600_000),
}

log = logging.getLogger("billing.relay.kafka")
quiet = logging.getLogger("billing.relay.librdkafka")
quiet.addHandler(logging.NullHandler())
quiet.propagate = False  # the client logs every reconnect attempt; its errors reach us once each (error_cb)


def ensure_topics(servers: str, routes: Routes, settings: KafkaSettings, timeout: float = TIMEOUT) -> None:
    """Create the event topics (``settings.partitions`` each) and the compacted checkpoint topic
    (one partition) unless they exist, with the cluster's default replication factor."""
    config: dict[str, Any] = {"bootstrap.servers": servers, "logger": quiet}
    admin = AdminClient(config)
    wanted = [NewTopic(topic, num_partitions=settings.partitions, replication_factor=-1)
              for topic in routes.all_topics]
    wanted.append(NewTopic(settings.checkpoints_topic, num_partitions=1, replication_factor=-1,
                           config=CHECKPOINT_TOPIC_CONFIG))
    for topic, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exception:
            error = exception.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailable(f"creating topic {topic}: {error.str()}") from None
            continue
        log.info("created topic %s", topic)
    partitions = _partitions(admin, settings.checkpoints_topic, timeout)
    if partitions != 1:
        raise RelaySetupError(f"topic {settings.checkpoints_topic} has {partitions} partitions; the "
                              "relay keeps its checkpoint in a topic of exactly one")


def _partitions(admin: AdminClient, topic: str, timeout: float) -> int:
    """How many partitions ``topic`` has. Right after it is made, the metadata may show it with
    none yet (or an error): asked again until it shows some, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = admin.list_topics(topic, timeout=timeout).topics[topic]
        except KafkaException as exception:
            raise KafkaUnavailable(f"describing {topic}: {exception}") from None
        if (found.error is None and found.partitions) or time.monotonic() > deadline:
            return len(found.partitions)
        time.sleep(0.1)
