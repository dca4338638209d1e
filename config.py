"""Configuration from the environment, shared by the worker and the starter CLI.

| variable             | default          | meaning                                   |
|----------------------|------------------|-------------------------------------------|
| DATABASE_URL         | (required)       | libpq URL of the event store              |
| TEMPORAL_ADDRESS     | 127.0.0.1:7233   | Temporal frontend host:port               |
| TEMPORAL_NAMESPACE   | default          | Temporal namespace                        |
| BILLING_TASK_QUEUE   | billing          | task queue of the account workflows       |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "billing"

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            temporal_address=os.environ.get("TEMPORAL_ADDRESS") or cls.temporal_address,
            temporal_namespace=os.environ.get("TEMPORAL_NAMESPACE") or cls.temporal_namespace,
            task_queue=os.environ.get("BILLING_TASK_QUEUE") or cls.task_queue,
        )

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (a libpq URL, e.g. postgresql://user@host/db)")
        return self.database_url


async def connect_temporal(settings: Settings) -> Client:
    """A Temporal client that speaks JSON via pydantic, so histories read well in the web UI."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
