"""The relay container's health probe (``python -m operations.health relay``) against a real
broker: healthy once the relay's topic exists, and it never creates the topic itself (the
broker auto-creates topics that a metadata request names, with the broker's defaults)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from devstack.kafka import KafkaBroker
from tests.e2e.conftest import ROOT


def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "operations.health", "relay"], cwd=ROOT,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


def test_relay_probe_waits_for_the_relays_topic(kafka_broker: KafkaBroker) -> None:
    servers, topic = kafka_broker.bootstrap_servers, f"probe-{uuid.uuid4().hex[:12]}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": servers, "KAFKA_TOPIC_ACCOUNT_EVENTS": topic}
    admin = AdminClient({"bootstrap.servers": servers})

    before = probe(env)
    assert before.returncode == 1, before.stdout + before.stderr
    assert f"has no topic {topic!r}" in before.stdout
    assert topic not in admin.list_topics(timeout=30).topics

    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    after = probe(env)
    assert after.returncode == 0, after.stdout + after.stderr


def test_relay_probe_without_a_broker_is_unhealthy() -> None:
    result = probe({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: Kafka at 127.0.0.1:1 does not answer")
