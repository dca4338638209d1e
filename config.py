"""Configuration from the environment, shared by the worker and the starter CLI.

| variable             | default          | meaning                                   |
|----------------------|------------------|-------------------------------------------|
| DATABASE_URL         | (required)       | libpq URL of the event store, as the      |
|                      |                  | worker's own login role (billing_worker)  |
| BILLING_MIGRATION_URL| (none)           | the owner's URL: the worker applies the   |
|                      |                  | migrations with it at start; without it,  |
|                      |                  | the worker expects a migrated database    |
| TEMPORAL_ADDRESS     | 127.0.0.1:7233   | Temporal frontend host:port               |
| TEMPORAL_NAMESPACE   | default          | Temporal namespace                        |
| BILLING_TASK_QUEUE   | billing          | task queue of the account workflows       |
| BILLING_DB_ROLE      | (none)           | legacy: SET ROLE to this after logging in |
|                      |                  | (the session could RESET ROLE)            |
| BILLING_STARTUP_TIMEOUT | 300           | seconds the worker waits at start for     |
|                      |                  | Postgres and Temporal before it gives up  |
| BILLING_WORKFLOW_SANDBOX | 0            | 1: run workflows in the SDK's sandbox      |
|                      |                  | (slower; for chasing a determinism bug)    |

TLS: for Postgres, put libpq's settings in DATABASE_URL (``?sslmode=verify-full&sslrootcert=...``)
or use libpq's own PGSSL* variables. For Temporal, the SDK's standard variables apply:
TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY (and
TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE for a TOML profile).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "billing"
    database_role: str | None = None
    workflow_sandbox: bool = False
    migration_url: str | None = None
    startup_timeout: float = 300.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            temporal_address=os.environ.get("TEMPORAL_ADDRESS") or cls.temporal_address,
            temporal_namespace=os.environ.get("TEMPORAL_NAMESPACE") or cls.temporal_namespace,
            task_queue=os.environ.get("BILLING_TASK_QUEUE") or cls.task_queue,
            database_role=os.environ.get("BILLING_DB_ROLE", cls.database_role) or None,
            workflow_sandbox=_flag("BILLING_WORKFLOW_SANDBOX"),
            migration_url=os.environ.get("BILLING_MIGRATION_URL") or None,
            startup_timeout=_seconds("BILLING_STARTUP_TIMEOUT", cls.startup_timeout),
        )

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (a libpq URL, e.g. postgresql://user@host/db)")
        return self.database_url

    def require_migration_url(self) -> str:
        if not self.migration_url:
            raise ConfigError("BILLING_MIGRATION_URL is not set (the libpq URL of the role that owns "
                              "the tables, e.g. postgresql://billing_owner@host/db)")
        return self.migration_url


async def connect_temporal(settings: Settings) -> Client:
    """A Temporal client that speaks JSON via pydantic, so histories read well in the web UI.

    TLS and API-key settings come from the SDK's standard TEMPORAL_* environment variables."""
    options = ClientConfig.load_client_connect_config()
    options["target_host"] = settings.temporal_address
    options["namespace"] = settings.temporal_namespace
    return await Client.connect(**options, data_converter=pydantic_data_converter)


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {value!r}")


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"{name} must be a number of seconds (0 or more), got {value!r}")
    return seconds
