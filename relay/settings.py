"""Kafka settings from the environment, shared by the relay and ``kafka tail``.

| variable                     | default                  | meaning                               |
|------------------------------|--------------------------|---------------------------------------|
| KAFKA_BOOTSTRAP_SERVERS      | (unset: the relay is off)| ``host:port[,host:port...]``          |
| KAFKA_TOPIC_ACCOUNT_EVENTS   | billing.account-events   | topic of the accounts' events         |
| KAFKA_TOPIC_INVOICES         | billing.invoices         | topic of the issued invoices          |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

ACCOUNT_EVENTS_TOPIC = "billing.account-events"
INVOICES_TOPIC = "billing.invoices"
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SERVER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s,:\[\]]+):\d{1,5}")


class KafkaConfigError(ValueError):
    """A Kafka setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str | None
    account_events_topic: str = ACCOUNT_EVENTS_TOPIC
    invoices_topic: str = INVOICES_TOPIC

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
