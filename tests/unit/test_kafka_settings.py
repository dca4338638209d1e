"""Kafka settings from the environment, and the broker's cluster ids."""

from __future__ import annotations

import base64

import pytest

from devstack.kafka import new_cluster_id
from relay.settings import KafkaConfigError, KafkaSettings


def test_defaults_leave_the_relay_off() -> None:
    settings = KafkaSettings.from_env({})
    assert not settings.enabled
    assert settings.topics == ("billing.account-events", "billing.invoices")
    with pytest.raises(KafkaConfigError, match="KAFKA_BOOTSTRAP_SERVERS is not set"):
        settings.require_bootstrap_servers()


def test_variables_set_servers_and_topics() -> None:
    settings = KafkaSettings.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": " 127.0.0.1:9092,kafka-2.internal:9093,[::1]:9094 ",
        "KAFKA_TOPIC_ACCOUNT_EVENTS": "acme.events", "KAFKA_TOPIC_INVOICES": "acme.invoices_v2"})
    assert settings.enabled
    assert settings.require_bootstrap_servers() == "127.0.0.1:9092,kafka-2.internal:9093,[::1]:9094"
    assert settings.topics == ("acme.events", "acme.invoices_v2")


def test_empty_variables_mean_the_defaults() -> None:
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "", "KAFKA_TOPIC_INVOICES": " "})
    assert not settings.enabled
    assert settings.invoices_topic == "billing.invoices"


@pytest.mark.parametrize("servers", ["127.0.0.1", "host:port", "a:1,,b:2", "a:1 b:2", "a:123456"])
def test_malformed_bootstrap_servers_are_refused(servers: str) -> None:
    with pytest.raises(KafkaConfigError, match="KAFKA_BOOTSTRAP_SERVERS must be host:port"):
        KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": servers})


@pytest.mark.parametrize("topic", ["has space", "slash/topic", "..", "x" * 250, "ümlaut"])
def test_malformed_topic_names_are_refused(topic: str) -> None:
    with pytest.raises(KafkaConfigError, match="KAFKA_TOPIC_INVOICES"):
        KafkaSettings.from_env({"KAFKA_TOPIC_INVOICES": topic})


def test_cluster_ids_look_like_kafkas() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
