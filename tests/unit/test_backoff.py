"""The capped backoff, the deadline, and the wait for a service that comes back (or does not).
The attempts here are plain coroutines; the real services are in tests/faults."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import psycopg
import pytest
from temporalio.service import RPCError, RPCStatusCode

from config import ConfigError
from devstack.processes import RestartPolicy
from outages.backoff import Backoff, Deadline
from outages.dependencies import (
    Stopped,
    Unavailable,
    postgres_reason,
    postgres_where,
    temporal_reason,
    wait_for,
)

FAST = Backoff(initial=0.01, cap=0.02)


class Outage(Exception):
    """What a service that is down raises in these tests."""


def outage(error: BaseException) -> str | None:
    return f"down ({error})" if isinstance(error, Outage) else None


def test_the_delays_double_up_to_the_cap():
    assert [Backoff().delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert Backoff(initial=1, factor=3, cap=20).delay(10_000) == 20  # no overflow


@pytest.mark.parametrize("options", [{"initial": 0}, {"initial": 2, "cap": 1}, {"factor": 0.5}])
def test_a_backoff_that_would_not_back_off_is_refused(options):
    with pytest.raises(ValueError):
        Backoff(**options)


def test_the_deadline_cuts_the_last_pause_short_then_ends_the_wait():
    deadline = Deadline.after(5.0, now=100.0)
    assert deadline.next_delay(Backoff(), 4, now=101.0) == 4  # 4 s of 4 left
    assert deadline.next_delay(Backoff(), 5, now=103.0) == 2  # 8 s wanted, 2 left
    assert deadline.next_delay(Backoff(), 6, now=105.0) is None


async def test_a_service_that_comes_back_is_used_and_each_failure_logged_once(caplog):
    failures = iter([Outage("refused"), Outage("starting up")])

    async def attempt() -> str:
        if (error := next(failures, None)) is not None:
            raise error
        return "connected"

    with caplog.at_level(logging.INFO, logger="billing.startup"):
        result = await wait_for("Postgres", "db/billing", attempt, reason=outage, backoff=FAST,
                                deadline=Deadline.after(30, asyncio.get_running_loop().time()))
    assert result == "connected"
    assert [record.getMessage() for record in caplog.records] == [
        "waiting for Postgres at db/billing: down (refused) (attempt 1, next in 0.01 s)",
        "waiting for Postgres at db/billing: down (starting up) (attempt 2, next in 0.02 s)",
        "Postgres at db/billing is back after 2 failed attempts",
    ]


async def test_an_error_that_is_no_outage_is_raised_at_once(caplog):
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("a bad migration")

    with pytest.raises(ValueError, match="a bad migration"):
        await wait_for("Postgres", "db", attempt, reason=outage, backoff=FAST,
                       deadline=Deadline.after(30, asyncio.get_running_loop().time()))
    assert attempts == 1 and not caplog.records


async def test_the_wait_ends_at_the_deadline_with_the_reason():
    async def attempt() -> None:
        raise Outage("connection refused")

    with pytest.raises(Unavailable, match=r"Temporal at t:7233 still unavailable after 0 s "
                                          r"\(\d+ attempts\): down \(connection refused\)"):
        await wait_for("Temporal", "t:7233", attempt, reason=outage, backoff=FAST,
                       deadline=Deadline.after(0.1, time.monotonic()))


async def test_a_stop_ends_the_wait():
    stop = asyncio.Event()

    async def attempt() -> None:
        stop.set()  # SIGTERM arrives while the service is down
        raise Outage("refused")

    with pytest.raises(Stopped):
        await wait_for("Postgres", "db", attempt, reason=outage, backoff=Backoff(initial=5, cap=5),
                       deadline=Deadline.after(60, time.monotonic()), stop=stop)


async def test_postgres_connection_errors_read_as_outages():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(psycopg.OperationalError) as refused:
        await psycopg.AsyncConnection.connect(f"postgresql://u@127.0.0.1:{port}/billing")
    with pytest.raises(psycopg.OperationalError) as no_socket:
        await psycopg.AsyncConnection.connect("postgresql://u@/billing?host=/nonexistent-billing-dir")
    assert postgres_reason(refused.value) == "Connection refused"
    assert postgres_reason(no_socket.value) == "No such file or directory"
    assert postgres_reason(psycopg.errors.UndefinedTable("no such table")) is None
    assert postgres_reason(ValueError("x")) is None


def test_temporal_connection_errors_read_as_outages():
    connect = RuntimeError(
        'Failed client connect: Server connection error: tonic::transport::Error(Transport, '
        'ConnectError(ConnectError("tcp connect error", 127.0.0.1:7233, Os { code: 111, kind: '
        'ConnectionRefused, message: "Connection refused" })))')
    assert temporal_reason(connect) == "Connection refused"
    assert temporal_reason(RPCError("namespace default not found", RPCStatusCode.NOT_FOUND, b"")) == (
        "not_found: namespace default not found")
    assert temporal_reason(TimeoutError()) == "no answer in time"
    assert temporal_reason(ConfigError("TEMPORAL_TLS is malformed")) is None


def test_where_names_host_database_and_user_but_never_the_password():
    assert postgres_where("postgresql://billing_worker:s3cret@db:5432/billing") == (
        "db:5432/billing as billing_worker")
    assert postgres_where("postgresql://billing_worker@/billing?host=/tmp/pg") == (
        "/tmp/pg/billing as billing_worker")
    assert "s3cret" not in postgres_where("host=db dbname=billing user=w password=s3cret")


def test_starter_up_restarts_with_a_growing_pause_and_gives_up_on_quick_failures():
    policy = RestartPolicy()
    assert policy.next_delay(0) == 1  # it had run for a while: start it again soon
    assert [policy.next_delay(n) for n in range(1, 5)] == [1, 2, 4, 8]
    assert policy.next_delay(5) is None
