"""The baseline: a plain service doing one Postgres transaction per command, done right.

Each command locks the account row, inserts its event and updates the row, in one transaction
(four round trips: SELECT ... FOR UPDATE, INSERT, UPDATE, COMMIT), on the same schema and the
same server as the Temporal path. Connections run concurrently, each on its own accounts' share
of the commands.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import psycopg

from activities.db import migrate


async def run_baseline(database_url: str, accounts: int, commands: int, connections: int, *,
                       processes: bool = False) -> tuple[float, dict[str, int]]:
    """Apply ``commands`` charges round-robin over ``accounts``; return (seconds, balances),
    the balances in the accounts' round-robin order. ``processes``: each connection in a
    process of its own with synchronous psycopg, which shows whether one client process is
    the limit."""
    await migrate(database_url)
    ids = [f"base-{connections}-{i}" for i in range(accounts)]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for account_id in ids:
            await conn.execute(
                "INSERT INTO accounts (account_id, currency, balance, version, overdraft_limit)"
                " VALUES (%s, 'USD', 0, 1, %s)", (account_id, 10**15))
    plan = [(ids[i % accounts], f"b{connections}-{i}") for i in range(commands)]
    shares = [plan[i::connections] for i in range(connections)]
    if processes:
        with ProcessPoolExecutor(connections, mp_context=get_context("spawn"),
                                 initializer=_connect, initargs=(database_url,)) as pool:
            loop = asyncio.get_running_loop()
            # Every process started and connected before the clock starts.
            await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in shares))
            started = time.perf_counter()
            await asyncio.gather(*(loop.run_in_executor(pool, _apply_in_process, share)
                                   for share in shares))
            elapsed = time.perf_counter() - started
    else:
        started = time.perf_counter()
        await asyncio.gather(*(_apply(database_url, share) for share in shares))
        elapsed = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute(
            "SELECT account_id, balance FROM accounts WHERE account_id = ANY(%s)", (ids,))).fetchall()
    balances: dict[str, int] = dict(rows)
    return elapsed, {account_id: balances[account_id] for account_id in ids}


_LOCK = "SELECT version, balance FROM accounts WHERE account_id = %s FOR UPDATE"
_INSERT = ("INSERT INTO account_events (event_id, account_id, version, event_type, payload,"
           " command_id) VALUES (%s, %s, %s, 'CHARGE_APPLIED', %s, %s)")
_UPDATE = "UPDATE accounts SET balance = %s, version = %s, updated_at = now() WHERE account_id = %s"
_PAYLOAD = json.dumps({"amount": 1, "description": ""})


async def _apply(database_url: str, share: list[tuple[str, str]]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for account_id, command_id in share:
            async with conn.transaction():
                row = await (await conn.execute(_LOCK, (account_id,))).fetchone()
                assert row is not None  # the account was inserted above
                version, balance = row
                await conn.execute(_INSERT, (uuid.uuid4(), account_id, version + 1, _PAYLOAD, command_id))
                await conn.execute(_UPDATE, (balance - 1, version + 1, account_id))


_connection: psycopg.Connection | None = None  # a baseline process's own


def _connect(database_url: str) -> None:
    global _connection
    _connection = psycopg.connect(database_url)


def _ready() -> None:
    assert _connection is not None
    time.sleep(0.2)  # long enough that every process of the pool gets one of these


def _apply_in_process(share: list[tuple[str, str]]) -> None:
    """The same transactions with synchronous psycopg, on this process's connection."""
    conn = _connection
    assert conn is not None
    for account_id, command_id in share:
        with conn.transaction():
            row = conn.execute(_LOCK, (account_id,)).fetchone()
            assert row is not None  # the account was inserted by run_baseline
            version, balance = row
            conn.execute(_INSERT, (uuid.uuid4(), account_id, version + 1, _PAYLOAD, command_id))
            conn.execute(_UPDATE, (balance - 1, version + 1, account_id))
