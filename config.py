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
| BILLING_SNAPSHOT_EVERY | 100            | a snapshot of an account every K events    |
|                      |                  | (0: none)                                  |
| BILLING_PROJECTIONS  | 1                | 0: the worker does not run the projections |
| BILLING_INVOICE_PREFIX | INV-           | invoice numbers: PREFIX + year + -000123   |
| BILLING_CREDIT_NOTE_PREFIX | CN-        | credit note numbers, a series of their own |
| BILLING_INVOICE_GRACE | 0               | seconds between a period's end and its     |
|                      |                  | invoice's finalization (set at open)       |
| BILLING_METRICS_PORT | (none: off)      | the worker's Prometheus endpoint, /metrics |
|                      |                  | (0: any free port, logged at start)        |
| BILLING_METRICS_HOST | 127.0.0.1        | the address that endpoint listens on       |
| BILLING_LOG_FORMAT   | text             | json: one JSON object per log line (the    |
|                      |                  | worker, the gateway, the CLI)              |

Each can also come from a ``.env`` file in the working directory; the environment wins.

TLS: for Postgres, put libpq's settings in DATABASE_URL (``?sslmode=verify-full&sslrootcert=...``)
or use libpq's own PGSSL* variables. For Temporal, the SDK's standard variables apply:
TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY (and
TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE for a TOML profile).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def _env(name: str, default: Any, **constraints: Any) -> Any:
    return Field(default, validation_alias=name, **constraints)


class Settings(BaseSettings):
    """Every knob of the service, read from the environment (and ``.env``); one model for the
    worker, the CLI and the local stack. ``Settings(field=...)`` sets fields directly."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True,
                                      populate_by_name=True, env_ignore_empty=True)

    database_url: str | None = _env("DATABASE_URL", None)
    temporal_address: str = _env("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    temporal_namespace: str = _env("TEMPORAL_NAMESPACE", "default")
    task_queue: str = _env("BILLING_TASK_QUEUE", "billing")
    database_role: str | None = _env("BILLING_DB_ROLE", None)
    workflow_sandbox: bool = _env("BILLING_WORKFLOW_SANDBOX", False)
    migration_url: str | None = _env("BILLING_MIGRATION_URL", None)
    startup_timeout: float = _env("BILLING_STARTUP_TIMEOUT", 300.0, ge=0, allow_inf_nan=False)
    snapshot_every: int = _env("BILLING_SNAPSHOT_EVERY", 100, ge=0)
    projections: bool = _env("BILLING_PROJECTIONS", True)
    invoice_prefix: str = _env("BILLING_INVOICE_PREFIX", "INV-", pattern=r"^[A-Za-z0-9_.-]{0,20}$")
    credit_note_prefix: str = _env("BILLING_CREDIT_NOTE_PREFIX", "CN-",
                                   pattern=r"^[A-Za-z0-9_.-]{0,20}$")
    invoice_grace_seconds: float = _env("BILLING_INVOICE_GRACE", 0.0, ge=0, allow_inf_nan=False)
    metrics_port: int | None = _env("BILLING_METRICS_PORT", None, ge=0, le=65_535)
    metrics_host: str = _env("BILLING_METRICS_HOST", "127.0.0.1", min_length=1)
    log_format: Literal["text", "json"] = _env("BILLING_LOG_FORMAT", "text")

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment; ``ConfigError`` names every malformed one."""
        try:
            return cls()
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in error.errors(include_url=False))
            raise ConfigError(f"invalid settings: {problems}") from None

    @classmethod
    def default(cls, name: str) -> Any:
        """A setting's default value."""
        return cls.model_fields[name].default

    def described(self) -> list[dict[str, Any]]:
        """Each setting: its variable, its value and its default, passwords in URLs masked."""
        return [{"variable": field.validation_alias, "value": _masked(getattr(self, name)),
                 "default": _masked(field.default)}
                for name, field in type(self).model_fields.items()]

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (a libpq URL, e.g. postgresql://user@host/db)")
        return self.database_url

    def require_migration_url(self) -> str:
        if not self.migration_url:
            raise ConfigError("BILLING_MIGRATION_URL is not set (the libpq URL of the role that owns "
                              "the tables, e.g. postgresql://billing_owner@host/db)")
        return self.migration_url


def _masked(value: Any) -> Any:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:****@host/db``."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def connect_temporal(settings: Settings) -> Client:
    """A Temporal client that speaks JSON via pydantic, so histories read well in the web UI.

    TLS and API-key settings come from the SDK's standard TEMPORAL_* environment variables."""
    options = ClientConfig.load_client_connect_config()
    options["target_host"] = settings.temporal_address
    options["namespace"] = settings.temporal_namespace
    return await Client.connect(**options, data_converter=pydantic_data_converter)
