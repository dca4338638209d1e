"""The process's Temporal runtime, set up for telemetry: a Prometheus endpoint
(``BILLING_METRICS_PORT``) that serves the SDK's runtime metrics and ours (``telemetry.metrics``),
and the SDK core's own log lines forwarded to Python's logging, so that with
``BILLING_LOG_FORMAT=json`` they are JSON lines too.

Call ``start(settings)`` once at start, before any Temporal client is made: it becomes the
default runtime, which every client (and so every worker) of the process uses.
"""

from __future__ import annotations

import logging
import socket

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from config import ConfigError, Settings
from telemetry.metrics import BUCKETS

log = logging.getLogger("billing.telemetry")
CORE_LOGGER = "temporalio.core"
"""Where the SDK core's log lines go with ``BILLING_LOG_FORMAT=json``."""
FREE_PORT_ATTEMPTS = 3


class MetricsUnavailable(ConfigError):
    """The metrics endpoint could not listen where it was told to (say, the port is taken)."""


def start(settings: Settings, *, serve_metrics: bool = True) -> str | None:
    """Make the default runtime as ``settings`` ask; the endpoint's URL (None when metrics are
    off, or not ``serve_metrics``: the gateway serves its own). A port taken is
    ``MetricsUnavailable``; port 0 takes any free one."""
    json_logs = settings.log_format == "json"
    port = settings.metrics_port if serve_metrics else None
    if port is None and not json_logs:
        return None  # the SDK's default runtime is just right
    logging_config = LoggingConfig.default
    if json_logs:
        logging_config = LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                                       forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER)))
    if port is None:
        Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=logging_config)))
        return None
    runtime, address = _serving(settings.metrics_host, port, logging_config)
    Runtime.set_default(runtime)
    url = f"http://{address}/metrics"
    log.info("metrics served on %s", url)
    return url


def _serving(host: str, port: int, logging_config: LoggingConfig) -> tuple[Runtime, str]:
    """A runtime whose Prometheus endpoint listens on ``host:port``. The SDK cannot say which
    port it bound, so for port 0 we find a free one first, and try again if someone takes it
    in between."""
    for attempt in range(1, FREE_PORT_ATTEMPTS + 1):
        address = _address(host, port or _free_port(host))
        metrics = PrometheusConfig(bind_address=address, counters_total_suffix=True,
                                   durations_as_seconds=True, histogram_bucket_overrides=BUCKETS)
        try:
            return Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=metrics)), address
        except ValueError as error:  # the SDK's "Failed starting Prometheus exporter: ..."
            if port or attempt == FREE_PORT_ATTEMPTS:
                raise MetricsUnavailable(f"BILLING_METRICS_PORT: cannot serve metrics on {address}: "
                                         f"{error}") from None
    raise AssertionError("unreachable")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
