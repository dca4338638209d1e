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

import psycopg

from activities.db import migrate


async def run_baseline(database_url: str, accounts: int, commands: int, connections: int) -> tuple[float, dict[str, int]]:
    """Apply ``commands`` charges round-robin over ``accounts``; return (seconds, balances),
    the balances in the accounts' round-robin order."""
    await migrate(database_url)
    ids = [f"base-{connections}-{i}" for i in range(accounts)]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for account_id in ids:
            await conn.execute(
                "INSERT INTO accounts (account_id, currency, balance, version, overdraft_limit)"
                " VALUES (%s, 'USD', 0, 1, %s)", (account_id, 10**15))
    plan = [(ids[i % accounts], f"b{connections}-{i}") for i in range(commands)]
    shares = [plan[i::connections] for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(_apply(database_url, share) for share in shares))
    elapsed = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute(
            "SELECT account_id, balance FROM accounts WHERE account_id = ANY(%s)", (ids,))).fetchall()
    balances = dict(rows)
    return elapsed, {account_id: balances[account_id] for account_id in ids}


async def _apply(database_url: str, share: list[tuple[str, str]]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for account_id, command_id in share:
            async with conn.transaction():
                cursor = await conn.execute(
                    "SELECT version, balance FROM accounts WHERE account_id = %s FOR UPDATE",
                    (account_id,))
                version, balance = await cursor.fetchone()
                await conn.execute(
                    "INSERT INTO account_events (event_id, account_id, version, event_type, payload,"
                    " command_id) VALUES (%s, %s, %s, 'CHARGE_APPLIED', %s, %s)",
                    (uuid.uuid4(), account_id, version + 1,
                     json.dumps({"amount": 1, "description": ""}), command_id))
                await conn.execute(
                    "UPDATE accounts SET balance = %s, version = %s, updated_at = now()"
                    " WHERE account_id = %s", (balance - 1, version + 1, account_id))
