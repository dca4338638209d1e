"""Kafka settings from the environment, shared by the relay and ``kafka tail``.

| variable                     | default                  | meaning                               |
|------------------------------|--------------------------|---------------------------------------|
| KAFKA_BOOTSTRAP_SERVERS      | (unset: the relay is off)| ``host:port[,host:port...]``          |
| KAFKA_TOPIC_ACCOUNT_EVENTS   | billing.account-events   | topic of the accounts' events         |
| KAFKA_TOPIC_INVOICES         | billing.invoices         | topic of the invoices and credit notes|
| KAFKA_TOPIC_RELAY_CHECKPOINTS| billing.relay-checkpoints| the relay's checkpoints (compacted)   |
| KAFKA_RELAY_ID               | billing-relay            | the relay's transactional.id, and the |
|                              |                          | key of its checkpoint                 |
| KAFKA_TOPIC_PARTITIONS       | 6                        | partitions of a topic the relay makes |
| KAFKA_RELAY_BATCH            | 500                      | events per Kafka transaction, at most |
| BILLING_RELAY_METRICS_PORT   | (none: off)              | the relay's Prometheus endpoint (lag) |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

ACCOUNT_EVENTS_TOPIC = "billing.account-events"
INVOICES_TOPIC = "billing.invoices"
CHECKPOINTS_TOPIC = "billing.relay-checkpoints"
RELAY_ID = "billing-relay"
PARTITIONS = 6
"""Of each event topic the relay creates: an account's events share one partition (the key is
the account id), so six is how many consumers of one group can share the accounts. Never
change it on a live topic: the account -> partition map would change with it."""
RELAY_BATCH = 500
T = TypeVar("T", int, None)
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SERVER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s,:\[\]]+):\d{1,5}")


class KafkaConfigError(ValueError):
    """A Kafka setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str | None
    account_events_topic: str = ACCOUNT_EVENTS_TOPIC
    invoices_topic: str = INVOICES_TOPIC
    checkpoints_topic: str = CHECKPOINTS_TOPIC
    relay_id: str = RELAY_ID
    partitions: int = PARTITIONS
    relay_batch: int = RELAY_BATCH
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSettings:
        """Read and check the variables; raise ``KafkaConfigError`` on a malformed one."""
        env = os.environ if environ is None else environ
        servers = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
        if servers is not None:
            check_bootstrap_servers(servers, "KAFKA_BOOTSTRAP_SERVERS")
        return cls(
            bootstrap_servers=servers,
            account_events_topic=_topic(env, "KAFKA_TOPIC_ACCOUNT_EVENTS", ACCOUNT_EVENTS_TOPIC),
            invoices_topic=_topic(env, "KAFKA_TOPIC_INVOICES", INVOICES_TOPIC),
            checkpoints_topic=_topic(env, "KAFKA_TOPIC_RELAY_CHECKPOINTS", CHECKPOINTS_TOPIC),
            relay_id=_relay_id(env),
            partitions=_count(env, "KAFKA_TOPIC_PARTITIONS", PARTITIONS, 1, 10_000),
            relay_batch=_count(env, "KAFKA_RELAY_BATCH", RELAY_BATCH, 1, 100_000),
            # Its own variable: the worker's BILLING_METRICS_PORT is often in the same environment.
            metrics_port=_count(env, "BILLING_RELAY_METRICS_PORT", None, 0, 65_535),
        )

    @property
    def enabled(self) -> bool:
        """Whether the relay runs: only when bootstrap servers are set."""
        return self.bootstrap_servers is not None

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.account_events_topic, self.invoices_topic)

    def require_bootstrap_servers(self) -> str:
        if self.bootstrap_servers is None:
            raise KafkaConfigError("KAFKA_BOOTSTRAP_SERVERS is not set (host:port of a Kafka broker, "
                                   "e.g. 127.0.0.1:9092; `make run RUN_ARGS=--kafka` prints it)")
        return self.bootstrap_servers


def check_bootstrap_servers(servers: str, source: str) -> None:
    """Raise ``KafkaConfigError`` unless ``servers`` is ``host:port`` items separated by commas."""
    for server in servers.split(","):
        if not _SERVER.fullmatch(server.strip()):
            raise KafkaConfigError(f"{source} must be host:port[,host:port...], got {servers!r}")


def check_topic_name(name: str, source: str) -> str:
    """``name`` if Kafka accepts it as a topic name, else ``KafkaConfigError``."""
    if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise KafkaConfigError(f"{source}: {name!r} is not a Kafka topic name (1-249 of "
                               "A-Z a-z 0-9 . _ -)")
    return name


def _topic(env: Mapping[str, str], variable: str, default: str) -> str:
    value = env.get(variable, "").strip()
    return check_topic_name(value, variable) if value else default


def _relay_id(env: Mapping[str, str]) -> str:
    value = env.get("KAFKA_RELAY_ID", "").strip()
    if not value:
        return RELAY_ID
    if not _TOPIC_NAME.fullmatch(value):  # printable and short: it is a key and a log field too
        raise KafkaConfigError(f"KAFKA_RELAY_ID: {value!r} must be 1-249 of A-Z a-z 0-9 . _ -")
    return value


def _count(env: Mapping[str, str], variable: str, default: T, low: int, high: int) -> int | T:
    value = env.get(variable, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise KafkaConfigError(f"{variable} must be a whole number from {low} to {high}, got {value!r}")
    return number
