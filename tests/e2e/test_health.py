"""The containers' health probes (``python -m operations.health``), run as docker-compose.yml
runs them, against a real worker process and a real gateway process. The relay's probe needs a
broker: tests/kafka/test_health_probe.py."""

from __future__ import annotations

import subprocess
import sys

from devstack.gateway import start_gateway
from gateway.settings import GatewaySettings
from operations.health import DEFAULT_HTTP_PORT
from tests.e2e.conftest import ROOT, WorkerProcess

PROBE_TIMEOUT = 60  # the probe gives up after 10 s; this bounds the process


def probe(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "operations.health", name], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PROBE_TIMEOUT)


def test_worker_probe_sees_this_hosts_worker_polling(worker_process: WorkerProcess,
                                                     service_env: dict[str, str]) -> None:
    healthy = probe("worker", service_env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.startswith("healthy: a worker on ")

    idle = probe("worker", {**service_env, "BILLING_TASK_QUEUE": "nobody-polls-this"})
    assert idle.returncode == 1
    assert "no worker on" in idle.stdout and "'nobody-polls-this'" in idle.stdout


def test_worker_probe_without_temporal_is_unhealthy(service_env: dict[str, str]) -> None:
    result = probe("worker", {**service_env, "TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: Temporal at 127.0.0.1:1")


def test_gateway_probe_follows_the_gateway(service_env: dict[str, str]) -> None:
    gateway = start_gateway(service_env, 0, echo=False)
    try:
        port = gateway.wait_ready(60).rsplit(":", 1)[1]
        healthy = probe("gateway", {**service_env, "BILLING_HTTP_PORT": port})
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    finally:
        assert gateway.stop() == 0
    gone = probe("gateway", {**service_env, "BILLING_HTTP_PORT": port})
    assert gone.returncode == 1 and "Connection refused" in gone.stdout


def test_probe_settings_and_usage(service_env: dict[str, str]) -> None:
    assert GatewaySettings.default("http_port") == DEFAULT_HTTP_PORT
    assert probe("gateway", {**service_env, "BILLING_HTTP_PORT": "http"}).returncode == 2
    relay = probe("relay", {name: value for name, value in service_env.items()
                            if not name.startswith("KAFKA_")})
    assert relay.returncode == 2 and "KAFKA_BOOTSTRAP_SERVERS is not set" in relay.stderr
    assert probe("everything", service_env).returncode == 2
