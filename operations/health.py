"""Health probes for the containers of docker-compose.yml. Each asks one question, prints the
answer in one line, and exits 0 (healthy), 1 (not) or 2 (its settings are missing or malformed):

    python -m operations.health worker    # Temporal sees this host's worker polling the task queue
    python -m operations.health gateway   # the HTTP API on BILLING_HTTP_PORT answers /openapi.json
    python -m operations.health relay     # Kafka answers, and the relay's topic exists

They read the same variables as the process they probe (``config.py``, ``gateway/settings.py``,
``relay/settings.py``), and each gives up after ``PROBE_TIMEOUT``, sooner than the compose
health check's own timeout, so that a failing probe says why instead of being killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.client import Client

PROBE_TIMEOUT = 10.0  # seconds; the compose health checks allow more
DEFAULT_HTTP_PORT = 8080
"""The gateway's default port (``GatewaySettings``; a test keeps the two equal). The gateway
probe reads BILLING_HTTP_PORT itself: importing the gateway's settings would import the
Temporal SDK, which costs a loaded machine seconds on every probe."""


class Unhealthy(Exception):
    """What is wrong, in one line."""


class Misconfigured(Exception):
    """A setting the probe needs is missing or malformed."""


async def worker_polling(client: Client, task_queue: str, host: str) -> None:
    """Raise ``Unhealthy`` unless a worker on ``host`` polls ``task_queue`` for workflow tasks
    and for activity tasks. A worker's identity is ``pid@hostname`` (the SDK's default), and a
    container's hostname is its own, so this asks about this container's worker. Temporal
    forgets a poller a few minutes after its last poll: a hung worker turns unhealthy then."""
    from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    for kind, queue_type in (("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
                             ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)):
        described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue_type=queue_type,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL)))
        identities = [poller.identity for poller in described.pollers]
        if not any(identity.endswith(f"@{host}") for identity in identities):
            seen = ", ".join(identities) or "none"
            raise Unhealthy(f"no worker on {host} polls the {kind} tasks of {task_queue!r} "
                            f"(pollers: {seen})")


def http_answers(url: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise ``Unhealthy`` unless ``url`` answers 200 with a JSON body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise Unhealthy(f"{url} answered {error.code}") from None
    except (OSError, ValueError) as error:  # refused, timed out, not JSON
        raise Unhealthy(f"{url}: {error}") from None


def kafka_topic_exists(bootstrap_servers: str, topic: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise ``Unhealthy`` unless the Kafka cluster answers a metadata request and has ``topic``.
    It asks for every topic: a request naming one lets a broker with auto-creation on create
    it, with the broker's defaults rather than the relay's."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise Unhealthy(f"Kafka at {bootstrap_servers} does not answer: {error}") from None
    if topic not in metadata.topics:
        raise Unhealthy(f"Kafka at {bootstrap_servers} has no topic {topic!r} yet")


async def _worker() -> str:
    from temporalio.service import RPCError

    from config import ConfigError, Settings, connect_temporal

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        raise Misconfigured(str(error)) from None
    async with asyncio.timeout(PROBE_TIMEOUT):
        try:
            client = await connect_temporal(settings)
            await worker_polling(client, settings.task_queue, socket.gethostname())
        except (RuntimeError, RPCError) as error:  # cannot connect; the namespace is missing
            raise Unhealthy(f"Temporal at {settings.temporal_address}: {error}") from None
    return f"a worker on {socket.gethostname()} polls {settings.task_queue!r}"


def _gateway() -> str:
    port = os.environ.get("BILLING_HTTP_PORT", "").strip() or str(DEFAULT_HTTP_PORT)
    if not port.isdigit() or not 0 < int(port) < 65_536:
        raise Misconfigured(f"BILLING_HTTP_PORT must be a port number, got {port!r}")
    url = f"http://127.0.0.1:{port}/openapi.json"
    http_answers(url)
    return f"{url} answers"


def _relay() -> str:
    from relay.settings import KafkaConfigError, KafkaSettings

    try:
        kafka = KafkaSettings.from_env()
        servers = kafka.require_bootstrap_servers()
    except KafkaConfigError as error:
        raise Misconfigured(str(error)) from None
    kafka_topic_exists(servers, kafka.account_events_topic)
    return f"Kafka at {servers} has {kafka.account_events_topic!r}"


PROBES: dict[str, Callable[[], str]] = {
    "worker": lambda: asyncio.run(_worker()),
    "gateway": _gateway,
    "relay": _relay,
}


def run(argv: Sequence[str]) -> int:
    """Run the probe named in ``argv``; its exit code."""
    if len(argv) != 1 or argv[0] not in PROBES:
        print(f"usage: python -m operations.health {{{','.join(PROBES)}}}", file=sys.stderr)
        return 2
    try:
        print(f"healthy: {PROBES[argv[0]]()}")
        return 0
    except Misconfigured as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Unhealthy as error:
        print(f"unhealthy: {error}")
        return 1
    except TimeoutError:
        print(f"unhealthy: no answer within {PROBE_TIMEOUT:g} s")
        return 1


if __name__ == "__main__":
    code = run(sys.argv[1:])
    # A Temporal client's runtime can abort interpreter finalization (docs/decisions.md).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
