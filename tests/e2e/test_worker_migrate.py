"""``python worker.py --migrate``: the migration step on its own, as the owner, then exit; the
worker's role then finds the database ready."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
from psycopg import sql

from activities.db import MIGRATIONS_DIR, check_worker_database
from devstack.postgres import OWNER, WORKER, with_user
from tests.conftest import database_url
from tests.e2e.conftest import ROOT

MIGRATE_TIMEOUT = 60.0


async def test_migrate_applies_the_migrations_as_the_owner_and_exits(pg_server_url: str) -> None:
    name = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                   sql.Identifier(OWNER)))
    url = database_url(pg_server_url, name)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BILLING_") and key != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "worker.py", "--migrate"], cwd=ROOT, text=True,
                            env={**env, "BILLING_MIGRATION_URL": with_user(url, OWNER)},
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=MIGRATE_TIMEOUT)

    assert result.returncode == 0, result.stderr
    names = ", ".join(path.stem for path in sorted(MIGRATIONS_DIR.glob("[0-9]*.sql")))
    assert f"migrations applied: {names}" in result.stderr, result.stderr
    with psycopg.connect(url) as conn:
        owners = {owner for (owner,) in conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
    assert owners == {OWNER}
    await check_worker_database(with_user(url, WORKER))
