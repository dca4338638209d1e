"""The gateway's settings: the service's own (``config.Settings``) plus where it listens.

| variable               | default     | meaning                                              |
|------------------------|-------------|------------------------------------------------------|
| BILLING_HTTP_HOST      | 127.0.0.1   | address the HTTP API listens on                      |
| BILLING_HTTP_PORT      | 8080        | its port (0: any free port, printed at start)        |
| BILLING_HTTP_TIMEOUT   | 10          | seconds one request may wait for Temporal or the log |
| BILLING_HTTP_RETRY_AFTER | 2         | seconds a 503 asks the client to wait (Retry-After)  |

DATABASE_URL (read-only use: the events route and ``close``), TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE and BILLING_TASK_QUEUE are the service's, as in ``config.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from config import Settings


def _env(name: str, default: Any, **constraints: Any) -> Any:
    return Field(default, validation_alias=name, **constraints)


class GatewaySettings(Settings):
    """``Settings`` and the HTTP knobs; one model, read the same way (environment, ``.env``)."""

    http_host: str = _env("BILLING_HTTP_HOST", "127.0.0.1")
    http_port: int = _env("BILLING_HTTP_PORT", 8080, ge=0, le=65_535)
    http_timeout: float = _env("BILLING_HTTP_TIMEOUT", 10.0, gt=0, allow_inf_nan=False)
    retry_after: int = _env("BILLING_HTTP_RETRY_AFTER", 2, ge=1)

    @classmethod
    def from_env(cls) -> GatewaySettings:
        """The settings from the environment; ``ConfigError`` names every malformed one."""
        settings = super().from_env()
        assert isinstance(settings, GatewaySettings)
        return settings
