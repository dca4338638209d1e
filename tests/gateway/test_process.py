"""The gateway as a real process (``python -m gateway`` through ``devstack.start_gateway``),
over the test's Postgres, dev server and worker: it serves on a port of its own, a schemathesis
run against its OpenAPI finds no server error and no answer that breaks the schema, and SIGTERM
ends it with exit code 0."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Worker

from devstack import StartupError
from devstack.gateway import start_gateway
from gateway.settings import GatewaySettings

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
MAX_EXAMPLES = 25  # per operation and phase
RUN_TIMEOUT = 150.0  # seconds, ours: a hung run fails instead of hanging the suite
SEED = 20261130  # the same cases every run; change it to explore
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,negative_data_rejection")


def gateway_env(settings: GatewaySettings) -> dict[str, str]:
    assert settings.database_url is not None
    return {**os.environ, "DATABASE_URL": settings.database_url,
            "TEMPORAL_ADDRESS": settings.temporal_address, "BILLING_TASK_QUEUE": settings.task_queue,
            "BILLING_HTTP_TIMEOUT": str(settings.http_timeout)}


async def test_the_process_serves_passes_schemathesis_and_stops_cleanly(
        gateway_settings: GatewaySettings, worker: Worker, tmp_path: Path) -> None:
    gateway = start_gateway(gateway_env(gateway_settings), 0, echo=False)
    try:
        url = await asyncio.to_thread(gateway.wait_ready, 30)
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            opened = await http.post("/accounts", json={"account_id": "proc", "currency": "JPY"})
            assert opened.status_code == 201, opened.text
            funded = await http.post("/accounts/proc/funds", json={"amount": 500},
                                     headers={"Idempotency-Key": "p1"})
            again = await http.post("/accounts/proc/funds", json={"amount": 500},
                                    headers={"Idempotency-Key": "p1"})
            assert (funded.status_code, again.json()) == (200, funded.json())
            assert again.headers["idempotent-replayed"] == "true"
        report = await schemathesis(url, tmp_path)
        print(report.output[-1200:])  # the summary, shown with -s
        assert report.returncode == 0, report.output
    finally:
        code = await asyncio.to_thread(gateway.stop)
    assert code == 0, "\n".join(gateway.recent)


def test_a_port_in_use_is_a_startup_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        gateway = start_gateway({**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"},
                                taken.getsockname()[1], echo=False)
        with pytest.raises(StartupError, match="exited with code 1") as failed:
            gateway.wait_ready(30)
    assert "address already in use" in str(failed.value)


class Run:
    def __init__(self, returncode: int | None, output: str) -> None:
        self.returncode, self.output = returncode, output


async def schemathesis(url: str, workdir: Path) -> Run:
    """``schemathesis run`` against the live OpenAPI, bounded in examples and time. Awaited, not
    blocking: the worker runs in this test's event loop."""
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--request-timeout", "30", "--no-color",
        cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        return Run(None, f"schemathesis did not finish within {RUN_TIMEOUT:g}s:\n{output.decode()}")
    return Run(process.returncode, output.decode(errors="replace"))
