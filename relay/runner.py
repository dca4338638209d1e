"""The relay's loop: read the gap-safe feed after the checkpoint, publish it in one Kafka
transaction with the next checkpoint, repeat; sleep on ``LISTEN`` when caught up.

The checkpoint lives in Kafka only (``relay.publisher``), so Postgres holds no relay state and
needs no more than SELECT on ``account_events``. An outage of either side pauses the relay: a
lost database connection is opened again and the feed read again from the checkpoint held in
memory (which is the committed one); any Kafka error drops the producer, and the next one reads
the committed checkpoint back before it publishes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from outages.backoff import Backoff
from projections import feed
from relay.errors import KafkaUnavailable
from relay.messages import START, Checkpoint, Routes
from relay.publisher import Publisher
from relay.settings import KafkaSettings
from telemetry import metrics

IDLE_WAIT = 1.0
"""Seconds to wait for an announcement of new events before looking anyway."""
HELD_BACK_WAIT = 0.05
"""Seconds before looking again when committed events wait for an older transaction."""
LOG_EVERY = 10.0
"""Seconds between progress lines (events published, lag)."""
BACKOFF = Backoff(initial=0.5, cap=10.0)

log = logging.getLogger("billing.relay")


class CheckpointAhead(RuntimeError):
    """The checkpoint in Kafka lies beyond everything this database has written: it belongs to
    another database. Going on would skip this one's events."""


@dataclass(frozen=True)
class RelayStatus:
    """What the metrics work reads: how far the relay has published, and how far behind it is
    (``lag`` as last measured, None before the first measurement)."""

    checkpoint: Checkpoint
    published_since_start: int
    lag: feed.Lag | None
    kafka_connected: bool
    database_connected: bool


class Relay:
    """Publishes the feed of the database at ``database_url`` to Kafka until stopped."""

    def __init__(self, settings: KafkaSettings, database_url: str, *, role: str | None = None,
                 routes: Routes | None = None) -> None:
        self.settings, self.database_url, self.role = settings, database_url, role
        self.routes = routes or Routes.of(settings)
        self.publisher = Publisher(settings, self.routes)
        self.checkpoint: Checkpoint | None = None  # the last one known committed
        self._kafka_open = False  # the producer is open and self.checkpoint is the committed one
        self.published = 0
        self.last_lag: feed.Lag | None = None
        self._conn: AsyncConnection[Any] | None = None
        self._listener: AsyncConnection[Any] | None = None
        self._checked = False  # the checkpoint against this database
        self._next_log = 0.0
        self.ready = asyncio.Event()
        """Set once the relay has reached Kafka and Postgres for the first time."""

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; ride out outages. Raises ``RelayFenced``,
        ``RelaySetupError`` or ``CheckpointAhead``, which waiting cannot cure."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                    if not await self.step():
                        await self._idle(stop)
                    failures = 0
                except (KafkaUnavailable, psycopg.OperationalError, psycopg.InterfaceError) as error:
                    failures += 1
                    delay = BACKOFF.delay(failures)
                    side = "Kafka" if isinstance(error, KafkaUnavailable) else "Postgres"
                    log.warning("relay paused, %s: %s (retry in %.1f s)", side, error, delay)
                    await self._drop(kafka=side == "Kafka", database=side == "Postgres")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        finally:
            await self._drop(kafka=True, database=True)

    async def step(self) -> bool:
        """Publish the next batch of the feed, if there is one; whether there was."""
        assert self._conn is not None and self.checkpoint is not None and self._kafka_open
        events = await feed.read(self._conn, self.checkpoint.at, self.settings.relay_batch)
        if events:
            self.checkpoint = await asyncio.to_thread(self.publisher.publish, events, self.checkpoint)
            self.published += len(events)
        await self._log_progress()
        return bool(events)

    async def lag(self) -> feed.Lag:
        """Events of the log not yet published, and the age of the oldest of them; also set as
        the gauges ``billing_relay_lag_events`` and ``billing_relay_lag_seconds``."""
        if self._conn is None or self.checkpoint is None:
            raise KafkaUnavailable("the relay is not connected")
        self.last_lag = lag = await feed.lag(self._conn, self.checkpoint.at)
        metrics.relay_lag(lag.events, lag.seconds)
        return lag

    def status(self) -> RelayStatus:
        return RelayStatus(self.checkpoint or START, self.published, self.last_lag,
                           self._kafka_open, self._conn is not None)

    async def _connect(self) -> None:
        if not self._kafka_open:
            found = await asyncio.to_thread(self.publisher.open)
            self.checkpoint, self._kafka_open = found or START, True
            self._checked = False
            log.info("relay %s resumes after %s (%d events published before)", self.settings.relay_id,
                     _where(self.checkpoint), self.checkpoint.events)
        if self._conn is None:
            self._conn = await self._open()
            self._listener = await self._open()
            await feed.listen(self._listener)
        if not self._checked:
            await self._check_checkpoint()
            self._checked = True
        if not self.ready.is_set():
            self.ready.set()
            log.info("relay running: the feed -> %s (checkpoints in %s)",
                     ", ".join(self.routes.all_topics), self.settings.checkpoints_topic)

    async def _open(self) -> AsyncConnection[Any]:
        conn = await AsyncConnection.connect(self.database_url, autocommit=True, connect_timeout=10)
        if self.role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))
        return conn

    async def _check_checkpoint(self) -> None:
        assert self._conn is not None and self.checkpoint is not None
        cursor = await self._conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        row = await cursor.fetchone()
        assert row is not None
        if self.checkpoint.at.transaction_id >= int(row[0]):
            raise CheckpointAhead(
                f"the checkpoint of relay {self.settings.relay_id} in {self.settings.checkpoints_topic} "
                f"({_where(self.checkpoint)}) is past every transaction of this database (next "
                f"{row[0]}): it was written for another database. Use another KAFKA_RELAY_ID.")

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for new events, a short while if some wait behind an older transaction."""
        assert self._conn is not None and self._listener is not None and self.checkpoint is not None
        behind = await feed.held_back(self._conn, self.checkpoint.at)
        waiting = asyncio.ensure_future(feed.wait(self._listener, HELD_BACK_WAIT if behind else IDLE_WAIT))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
        if waiting.done() and not waiting.cancelled() and (error := waiting.exception()) is not None:
            raise error

    async def _log_progress(self) -> None:
        now = time.monotonic()
        if now < self._next_log:
            return
        self._next_log = now + LOG_EVERY
        lag = await self.lag()
        log.info("relay: %d events published since start, checkpoint %s, lag %d events / %.1f s",
                 self.published, _where(self.checkpoint or START), lag.events, lag.seconds)

    async def _drop(self, *, kafka: bool, database: bool) -> None:
        if kafka:
            await asyncio.to_thread(self.publisher.close)
            # Read back from Kafka on the next open: the last commit may or may not have landed.
            self._kafka_open = False
        if database:
            for conn in (self._conn, self._listener):
                if conn is not None:
                    with contextlib.suppress(Exception):  # already broken: nothing to close cleanly
                        await conn.close()
            self._conn = self._listener = None


def _where(checkpoint: Checkpoint) -> str:
    at = checkpoint.at
    if at == START.at:
        return "the start of the log"
    return f"(transaction {at.transaction_id}, position {at.position})"
