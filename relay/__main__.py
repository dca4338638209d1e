"""``python -m relay``: publish the event log to Kafka, exactly once, until SIGINT or SIGTERM.

    DATABASE_URL=postgresql://billing_worker@host/billing KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \\
        python -m relay

Reads the gap-safe feed as the worker's role (SELECT on ``account_events`` is all it needs) and
publishes it with one transactional producer (``relay.publisher``). Settings: ``DATABASE_URL``
(and ``BILLING_DB_ROLE``, see ``config.py``) and the ``KAFKA_*`` variables of
``relay.settings``; ``BILLING_LOG_FORMAT`` (text or json) and ``BILLING_RELAY_METRICS_PORT`` (its
lag as Prometheus gauges). Without ``KAFKA_BOOTSTRAP_SERVERS`` the relay is off: it says so and exits 0.
Outages of Postgres or Kafka pause it (one log line per attempt) for as long as they last.

Exit codes: 0 stopped when asked (or off), 1 fenced by another relay with the same
``KAFKA_RELAY_ID`` or failed, 2 configuration (a malformed variable, a checkpoint topic of the
wrong shape, a checkpoint that belongs to another database).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from config import ConfigError, Settings
from relay.errors import RelayFenced, RelaySetupError
from relay.runner import CheckpointAhead, Relay
from relay.settings import KafkaConfigError, KafkaSettings
from telemetry import logs, runtime

log = logging.getLogger("billing.relay")


async def serve(kafka: KafkaSettings, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    relay = Relay(kafka, settings.require_database_url(), role=settings.database_role)
    await relay.run(stop)
    log.info("relay stopped: %d events published since start", relay.published)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        kafka = KafkaSettings.from_env()
        if not kafka.enabled:
            log.info("KAFKA_BOOTSTRAP_SERVERS is not set: the relay is off")
            return 0
        settings = Settings.from_env()
        settings.require_database_url()
        logs.configure(settings.log_format)
        runtime.start(settings.model_copy(update={"metrics_port": kafka.metrics_port}))
        asyncio.run(serve(kafka, settings))
        return 0
    except (KafkaConfigError, ConfigError, RelaySetupError, CheckpointAhead) as error:
        log.error("relay cannot run: %s", error)
        return 2
    except RelayFenced as error:
        log.error("relay stopped: %s", error)
        return 1
    except Exception as error:  # a last word for the operator, then exit non-zero
        log.error("relay failed: %s", error, exc_info=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
