"""The JSON log formatter, the log settings, and the metrics endpoint's port handling."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
from collections.abc import Iterator

import httpx
import pytest
from temporalio import workflow
from temporalio.runtime import LoggingConfig

from config import ConfigError, Settings
from telemetry import logs, runtime


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("billing.test", logging.WARNING, __file__, 1, message, args or ("world",), None)
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord) -> dict:
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    parsed: dict = json.loads(line)
    return parsed


def test_a_line_has_time_level_logger_and_message() -> None:
    line = formatted(record())
    assert line.keys() == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "billing.test", "hello world")
    assert line["time"].endswith("+00:00")


def test_a_workflows_details_become_fields_and_its_id_names_the_account() -> None:
    details = {"workflow_id": "account-acme", "run_id": "r1", "attempt": 1, "namespace": "default",
               "task_queue": "billing", "workflow_type": "AccountWorkflow", "update_id": "u1"}
    line = formatted(record(temporal_workflow=details))
    assert line["account_id"] == "acme"
    assert {key: line[key] for key in details} == details


def test_an_activitys_details_become_fields_too() -> None:
    details = {"activity_type": "append_events", "workflow_id": "account-a.b:c", "workflow_run_id": "r9"}
    line = formatted(record(temporal_activity=details))
    assert (line["account_id"], line["run_id"], line["activity_type"]) == ("a.b:c", "r9", "append_events")


def test_other_workflows_have_no_account_and_an_explicit_one_wins() -> None:
    assert "account_id" not in formatted(record(temporal_workflow={"workflow_id": "replay-acme"}))
    line = formatted(record(account_id="given", temporal_workflow={"workflow_id": "account-acme"}))
    assert line["account_id"] == "given"


def test_extra_fields_are_kept_but_never_over_the_four_base_fields() -> None:
    line = formatted(record(command_id="k1", status=402, time="spoofed", level="DEBUG", odd=object(),
                            text="naïve \"quoted\"\nnewline"))
    assert (line["command_id"], line["status"], line["level"]) == ("k1", 402, "WARNING")
    assert line["time"] != "spoofed"
    assert line["odd"].startswith("<object object")  # what cannot be JSON is its text
    assert line["text"] == "naïve \"quoted\"\nnewline"


def test_an_exception_is_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info())
    line = formatted(made)
    assert line["exception"].startswith("Traceback") and "ValueError: boom" in line["exception"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    workflow.logger.workflow_info_on_message = True


def test_configure_json_sends_json_lines_and_keeps_workflow_details_out_of_messages(
        restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    logging.getLogger("billing.x").info("one", extra={"account_id": "acme", "command_id": "k1"})
    assert json.loads(stream.getvalue())["command_id"] == "k1"
    assert workflow.logger.workflow_info_on_message is False
    logs.configure("text", stream=stream)
    assert workflow.logger.workflow_info_on_message is True


@pytest.mark.parametrize("value, expected", [(None, "text"), ("json", "json"), ("text", "text")])
def test_the_log_format_is_text_unless_json_is_asked_for(monkeypatch, value, expected) -> None:
    if value is None:
        monkeypatch.delenv("BILLING_LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("BILLING_LOG_FORMAT", value)
    assert Settings.from_env().log_format == expected


def test_metrics_are_off_by_default_and_a_bad_port_or_format_is_a_config_error(monkeypatch) -> None:
    monkeypatch.delenv("BILLING_METRICS_PORT", raising=False)
    assert Settings.from_env().metrics_port is None
    monkeypatch.setenv("BILLING_METRICS_PORT", "70000")
    with pytest.raises(ConfigError, match="BILLING_METRICS_PORT"):
        Settings.from_env()
    monkeypatch.setenv("BILLING_METRICS_PORT", "9464")
    monkeypatch.setenv("BILLING_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="BILLING_LOG_FORMAT"):
        Settings.from_env()


def test_nothing_changes_the_runtime_when_metrics_are_off_and_logs_are_text() -> None:
    assert runtime.start(Settings(metrics_port=None, log_format="text")) is None


def test_port_zero_serves_on_a_free_port_and_a_taken_port_is_a_typed_error() -> None:
    served, address = runtime._serving("127.0.0.1", 0, LoggingConfig.default)
    counter = served.metric_meter.create_counter("billing_probe", "a probe")
    counter.add(2)
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    assert "billing_probe_total" in text
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(runtime.MetricsUnavailable, match=f"BILLING_METRICS_PORT: .*127.0.0.1:{port}"):
            runtime._serving("127.0.0.1", port, LoggingConfig.default)
