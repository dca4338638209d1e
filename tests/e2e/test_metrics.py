"""Metrics and JSON logs of the real processes: ``python worker.py`` with BILLING_METRICS_PORT=0
and ``python -m gateway``, both with BILLING_LOG_FORMAT=json, over the test's Postgres and dev
server. Traffic goes through the gateway (an open, funds, charges, a decline, a duplicate, a
reused key, a rejection, a close refused for the balance, a close once it is spent, a charge
that revives the finished workflow), and one signal straight to the workflow (a reused key, which
the workflow logs); both endpoints are scraped before and after, parsed with
``prometheus_client.parser``, and every counter must have moved by exactly what was sent.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from devstack.gateway import GatewayProcess, start_gateway
from tests.e2e.conftest import ROOT, STOP_TIMEOUT, WorkerProcess

SETTLE_TIMEOUT = 60.0  # seconds for a sampled gauge to show what the log holds
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample at ``url``, keyed by name and labels (the SDK's own labels dropped)."""
    text = httpx.get(url, timeout=10).raise_for_status().text
    ignored = {"service_name", "namespace", "task_queue", "workflow_type", "activity_type"}
    return {(sample.name, frozenset(pair for pair in sample.labels.items() if pair[0] not in ignored)):
            sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


def moved(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """How far each series of ``name`` moved (series that did not move left out)."""
    return {labels: value - before.get((sample, labels), 0.0)
            for (sample, labels), value in after.items()
            if sample == name and value != before.get((sample, labels), 0.0)}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def json_lines(lines: list[str]) -> list[dict]:
    """The JSON log lines; any other line but the gateway's ready line fails the test."""
    parsed = []
    for line in filter(str.strip, lines):
        if line.startswith("gateway listening on"):
            continue
        parsed.append(json.loads(line))  # fails the test, naming the line, if it is not JSON
    return parsed


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {SETTLE_TIMEOUT:g} s: {what}")
        time.sleep(0.5)


@pytest.fixture
def telemetry_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, "BILLING_METRICS_PORT": "0", "BILLING_LOG_FORMAT": "json"}


@pytest.fixture
def worker_with_metrics(telemetry_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[WorkerProcess, str]]:
    """The worker process, polling, and the URL of its metrics (found in its JSON log)."""
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=telemetry_env,
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    worker = WorkerProcess(process, log)
    try:
        worker.wait_until_polling()
        served = [line["message"] for line in json_lines(worker.output().splitlines())
                  if line["message"].startswith("metrics served on ")]
        assert len(served) == 1, worker.output()
        yield worker, served[0].removeprefix("metrics served on ")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)


@pytest.fixture
async def gateway(telemetry_env: dict[str, str]) -> AsyncIterator[tuple[GatewayProcess, str]]:
    process = start_gateway(telemetry_env, 0, echo=False)
    try:
        yield process, await asyncio.to_thread(process.wait_ready, 30)
    finally:
        assert await asyncio.to_thread(process.stop) == 0, "\n".join(process.recent)


SIGNAL = ("add_funds", "f1", {"command_id": "f1", "amount": 7}, None)
# (path, key, body, expected status), in order; SIGNAL is sent to the workflow itself.
TRAFFIC = [
    ("/accounts", None, {"account_id": "m1", "currency": "USD"}, 201),
    ("/accounts/m1/funds", "f1", {"amount": 1_000}, 200),
    ("/accounts/m1/funds", "f2", {"amount": 500}, 200),
    ("/accounts/m1/charges", "c1", {"amount": 300}, 200),
    ("/accounts/m1/charges", "c2", {"amount": 10_000}, 402),     # declined
    ("/accounts/m1/funds", "f1", {"amount": 1_000}, 200),        # duplicate: replayed
    ("/accounts/m1/funds", "f1", {"amount": 999}, 422),          # the key reused: refused
    SIGNAL,                                                       # the same, as a signal
    ("/accounts/m1/funds", "f3", {"amount": 5, "currency": "EUR"}, 422),  # rejected
    ("/accounts/m1/close", "x1", {"reason": "done"}, 409),      # a balance: rejected
    ("/accounts/m1/charges", "c4", {"amount": 1_200}, 200),      # the balance to 0
    ("/accounts/m1/close", "x2", {"reason": "done"}, 200),
    ("/accounts/m1/charges", "c3", {"amount": 1}, 409),          # finished: revived, rejected
]


async def test_both_endpoints_count_exactly_what_was_sent_and_logs_are_json(
        worker_with_metrics: tuple[WorkerProcess, str], gateway: tuple[GatewayProcess, str],
        client: Client) -> None:
    worker, worker_metrics = worker_with_metrics
    gateway_process, url = gateway
    before_worker, before_gateway = scrape(worker_metrics), scrape(f"{url}/metrics")

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for path, key, body, status in TRAFFIC:
            if status is None:
                await client.get_workflow_handle("account-m1").signal(path, body)
                continue
            answer = await http.post(path, json=body, headers={"Idempotency-Key": key} if key else {})
            assert answer.status_code == status, (path, key, answer.text)

    after_worker, after_gateway = scrape(worker_metrics), scrape(f"{url}/metrics")
    assert moved(before_worker, after_worker, "billing_commands_total") == {
        labels(kind="open", outcome="applied"): 1,
        labels(kind="add_funds", outcome="applied"): 2,
        labels(kind="add_funds", outcome="duplicate"): 1,
        labels(kind="add_funds", outcome="refused"): 2,
        labels(kind="add_funds", outcome="rejected"): 1,
        labels(kind="charge", outcome="applied"): 2,
        labels(kind="charge", outcome="declined"): 1,
        labels(kind="charge", outcome="rejected"): 1,
        labels(kind="close", outcome="rejected"): 1,
        labels(kind="close", outcome="applied"): 1,
        # The workflow's own: the close bills the period at once (INVOICE_DRAFTED, _FINALIZED).
        labels(kind="draft_invoice", outcome="applied"): 1,
        labels(kind="finalize_invoice", outcome="applied"): 1,
    }
    # The closed account's workflow had finished: the gateway's client revived it for c3.
    assert moved(before_worker, after_worker, "billing_workflows_revived_total") == {
        labels(status="closed"): 1}
    batches = moved(before_worker, after_worker, "billing_batch_commands_sum")
    commands = len(TRAFFIC) + 2  # with the final invoice's two
    assert batches == {labels(): commands}  # every command was in exactly one batch
    appends = moved(before_worker, after_worker, "billing_append_seconds_count")[labels()]
    # Each store call appends; the duplicate and the refusal (no events) may have gone alone.
    stores = moved(before_worker, after_worker, "billing_batch_commands_count")[labels()]
    assert 1 <= appends <= stores <= commands
    assert any(name.startswith("temporal_") for name, _ in after_worker), "the SDK's own metrics"

    route = "/accounts/{account_id}"
    assert moved(before_gateway, after_gateway, "billing_http_requests_total") == {
        labels(method="POST", route="/accounts", status="201"): 1,
        labels(method="POST", route=f"{route}/funds", status="200"): 3,
        labels(method="POST", route=f"{route}/funds", status="422"): 2,  # no request for SIGNAL
        labels(method="POST", route=f"{route}/charges", status="200"): 2,
        labels(method="POST", route=f"{route}/charges", status="402"): 1,
        labels(method="POST", route=f"{route}/charges", status="409"): 1,
        labels(method="POST", route=f"{route}/close", status="409"): 1,
        labels(method="POST", route=f"{route}/close", status="200"): 1,
        labels(method="GET", route="/metrics", status="200"): 1,  # the first scrape
    }
    latency = moved(before_gateway, after_gateway, "billing_http_request_seconds_count")
    assert latency[labels(method="POST", route=f"{route}/funds")] == 5

    # The projections catch up with the log, and the sampled gauges show it.
    def caught_up() -> bool:
        now = scrape(worker_metrics)
        return all(now.get((f"billing_projection_lag_{unit}", labels(projection=name))) == 0
                   for name in ("statement", "daily_totals") for unit in ("events", "seconds"))

    await asyncio.to_thread(wait_for, caught_up, "the projections' lag gauges at 0")

    worker_lines = json_lines(worker.output().splitlines())  # every line of the worker is JSON
    assert {"time", "level", "logger", "message"} <= worker_lines[0].keys()
    refused = [line for line in worker_lines if line["message"].startswith("signal refused")]
    assert [(line["account_id"], line["workflow_id"], line["level"]) for line in refused] == [
        ("m1", "account-m1", "WARNING")], refused
    assert "({" not in refused[0]["message"]  # the workflow's details are fields, not in the text
    declined = [line for line in json_lines(list(gateway_process.recent))
                if line.get("command_id") == "c2"]
    assert declined and declined[0]["account_id"] == "m1" and declined[0]["status"] == 402, declined
    assert worker.stop() == 0, worker.output()
