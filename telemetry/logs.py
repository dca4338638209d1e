"""Log lines as text, or as one JSON object per line (``BILLING_LOG_FORMAT=json``).

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, then what the
record knows about its context: ``account_id`` and ``command_id`` when the caller passed them
(``log.info(..., extra={"account_id": ..., "command_id": ...})``), and the Temporal SDK's
workflow and activity details (``workflow_id``, ``run_id``, ``activity_type``, ``attempt``, …),
from which a workflow id ``account-<id>`` gives ``account_id``. Any other ``extra`` field is
kept; ``exception`` holds a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from temporalio import activity, workflow

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCOUNT_WORKFLOW_PREFIX = "account-"
"""``workflows.interface.workflow_id``'s prefix."""

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_TEMPORAL = ("temporal_workflow", "temporal_activity")
_SKIPPED = frozenset({"temporal_log", "workflow_info"})
"""Objects the SDK attaches whole (a core log line, the full workflow info)."""
_RENAMED: dict[str, str] = {"workflow_run_id": "run_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in _context(record):
            line.setdefault(name, value)  # never over the four fields above
        workflow_id = line.get("workflow_id")
        if "account_id" not in line and isinstance(workflow_id, str) \
                and workflow_id.startswith(ACCOUNT_WORKFLOW_PREFIX):
            line["account_id"] = workflow_id.removeprefix(ACCOUNT_WORKFLOW_PREFIX)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _context(record: logging.LogRecord) -> list[tuple[str, Any]]:
    """The record's ``extra`` fields, the SDK's workflow and activity details flattened."""
    found: list[tuple[str, Any]] = []
    for key, value in record.__dict__.items():
        if key in _TEMPORAL and isinstance(value, Mapping):
            found.extend((_RENAMED.get(str(name), str(name)), detail) for name, detail in value.items())
        elif key not in _STANDARD and key not in _SKIPPED:
            found.append((key, value))
    return found


def configure(log_format: LogFormat, *, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stderr) as ``log_format`` says, replacing any
    handlers configured before. In JSON, the SDK's workflow and activity details go into the
    line's fields rather than onto the end of its message."""
    handler = logging.StreamHandler(stream or sys.stderr)
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    workflow.logger.workflow_info_on_message = not json_lines
    activity.logger.activity_info_on_message = not json_lines
