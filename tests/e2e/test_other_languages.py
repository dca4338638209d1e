"""The Go and TypeScript services (``services/``) pass the shared vectors against a real stack.

Each is built with its own tool chain from the registries only (the Go module proxy, npm) and
run as its own process against the test's dev server, worker and fresh database; it prints one
``ok`` line per step and exits 0 only if every answer matched. Builds are cached: Go in its
default module and build caches, npm's packages in ``services/typescript/node_modules`` (kept
while ``package-lock.json`` is unchanged), ``tsc``'s output in ``dist/`` (kept while newer than
its sources). Without ``go`` or ``node`` on the PATH the test is skipped, except under CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.vectors import HERE as VECTORS
from tests.vectors import vector_files

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
GO_BINARY = ROOT / ".data" / "services" / "vectors-go"
TYPESCRIPT = SERVICES / "typescript"
BUILD_TIMEOUT = 900.0  # a cold build downloads and compiles the SDKs on 2 shared cores
RUN_TIMEOUT = 120.0


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not on the PATH; CI must run the {name} service")
        pytest.skip(f"{name} is not on the PATH")
    return path


def build(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def go_service() -> list[str]:
    """The Go service's binary. ``-mod=readonly``: go.sum is the lock; GOTOOLCHAIN=local: an
    older Go fails here instead of fetching a newer one."""
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local"}
    build([tool("go"), "build", "-o", str(GO_BINARY), "."], SERVICES / "go", env)
    return [str(GO_BINARY)]


@pytest.fixture(scope="session")
def typescript_service() -> list[str]:
    """``node dist/main.js``, after ``npm ci`` and ``tsc`` if their inputs changed."""
    node, npm = tool("node"), tool("npm")
    lock = hashlib.sha256((TYPESCRIPT / "package-lock.json").read_bytes()).hexdigest()
    stamp = TYPESCRIPT / "node_modules" / ".installed-lock"
    if not stamp.is_file() or stamp.read_text() != lock:
        build([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], TYPESCRIPT)
        stamp.write_text(lock)
    main = TYPESCRIPT / "dist" / "main.js"
    sources = [*(TYPESCRIPT / "src").rglob("*.ts"), TYPESCRIPT / "tsconfig.json", stamp]
    if not main.is_file() or main.stat().st_mtime < max(path.stat().st_mtime for path in sources):
        build([npm, "run", "--silent", "build"], TYPESCRIPT)
    return [node, str(main)]


async def run_service(command: list[str], temporal_env: WorkflowEnvironment, task_queue: str) -> None:
    """Run a service over every vector; it must exit 0 with one ``ok`` line per step."""
    env = {**os.environ,
           "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "TEMPORAL_NAMESPACE": temporal_env.client.namespace,
           "BILLING_TASK_QUEUE": task_queue}
    # Asynchronously: the worker that answers it runs in this test's event loop.
    process = await asyncio.create_subprocess_exec(
        *command, str(VECTORS), env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{command[-1]} did not finish in {RUN_TIMEOUT:g}s") from None
    text = f"{stdout.decode(errors='replace')}\n--- stderr:\n{stderr.decode(errors='replace')}"
    assert process.returncode == 0, f"{command[-1]} exited {process.returncode}:\n{text}"
    steps = sum(len(json.loads(path.read_text())["steps"]) for path in vector_files())
    assert [line[:3] for line in stdout.decode().splitlines()] == ["ok "] * steps, text


async def test_go_service_passes_the_vectors(go_service: list[str], temporal_env: WorkflowEnvironment,
                                             worker: Worker, task_queue: str) -> None:
    await run_service(go_service, temporal_env, task_queue)


async def test_typescript_service_passes_the_vectors(typescript_service: list[str],
                                                     temporal_env: WorkflowEnvironment,
                                                     worker: Worker, task_queue: str) -> None:
    await run_service(typescript_service, temporal_env, task_queue)
