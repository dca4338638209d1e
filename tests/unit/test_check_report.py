"""The parts of ``billing check`` that need no database: the per-account fold, the report, its
output and its arguments."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from activities.rows import StoredEvent
from domain.upcasting import SCHEMA_VERSIONS
from operations.reconcile import Finding, LogFold, Report
from starter import cli, output

RECORDED_AT = datetime(2026, 11, 30, tzinfo=UTC)


def created(account_id: str = "a", overdraft_limit: int = 0) -> tuple:
    return ("ACCOUNT_CREATED", {"account_id": account_id, "currency": "USD",
                                "overdraft_limit": overdraft_limit}, None)


def stored(version: int, event_type: str, payload: dict, command_id: str | None) -> StoredEvent:
    return StoredEvent(version, event_type, payload, command_id, None, SCHEMA_VERSIONS[event_type],
                       RECORDED_AT)


def fold(*rows: tuple, account_id: str = "a") -> LogFold:
    log = LogFold(account_id)
    for version, row in enumerate(rows, start=1):
        log.add(stored(version, *row))
    return log


def fields(log: LogFold) -> list[str]:
    return [finding.field for finding in log.findings]


def test_a_clean_log_folds_with_evolve():
    log = fold(created(overdraft_limit=100), ("FUND_ADDED", {"amount": 50}, "f"),
               ("CHARGE_APPLIED", {"amount": 120}, "c"), ("ACCOUNT_CLOSED", {"reason": ""}, "x"),
               ("COMMAND_REJECTED", {"command": "charge", "reason": "account is closed"}, "y"))
    assert log.findings == [] and not log.broken
    assert (log.state.balance, log.state.version, log.state.status.value) == (-70, 5, "closed")


def test_the_running_balance_is_checked_after_every_event_and_reported_once():
    log = fold(created(), ("CHARGE_APPLIED", {"amount": 5}, "c1"),
               ("CHARGE_APPLIED", {"amount": 5}, "c2"), ("FUND_ADDED", {"amount": 10}, "f"))
    assert [(f.field, f.expected, f.actual, f.detail) for f in log.findings] == [
        ("running_balance", ">= 0", -5, "after CHARGE_APPLIED at version 2")]
    assert log.state.balance == 0 and not log.broken


def test_a_gap_stops_the_fold():
    log = LogFold("a")
    log.add(stored(1, *created()))
    log.add(stored(3, "FUND_ADDED", {"amount": 1}, "f"))
    log.add(stored(4, "FUND_ADDED", {"amount": 1}, "g"))
    assert log.broken and fields(log) == ["versions"]
    assert (log.findings[0].expected, log.findings[0].actual) == (2, 3)


def test_impossible_orders_break_the_log():
    assert fields(fold(("FUND_ADDED", {"amount": 1}, "f"))) == ["event"]
    assert fields(fold(created(), created())) == ["event"]
    assert fields(fold(created(account_id="b"))) == ["event"]
    assert fields(fold(created(), ("ACCOUNT_CLOSED", {}, "x"),
                       ("FUND_ADDED", {"amount": 1}, "f"))) == ["event"]


def test_an_event_that_does_not_parse_breaks_the_log():
    log = fold(created(), ("FUND_ADDED", {"amount": "lots"}, "f"))
    assert log.broken and fields(log) == ["event"]
    assert log.findings[0].detail.startswith("version 2 does not parse")


def test_the_fold_keeps_the_state_the_workflow_would_have_memory_included():
    rows = [created()] + [("FUND_ADDED", {"amount": 1}, f"f{i}") for i in range(2_500)]
    log = fold(*rows)
    assert log.state.balance == 2_500
    assert list(log.state.recent_commands) == [f"f{i}" for i in range(500, 2_500)]


def test_report_summary_lines_and_json():
    finding = Finding(account_id="a", field="accounts.balance", expected=700, actual=701,
                      detail="folded from the log")
    report = Report(accounts_checked=3, events_checked=11, workflows_checked=2, findings=[finding])
    assert not report.ok
    assert report.summary().splitlines() == [
        "accounts 3, events 11, workflows 2, findings 1",
        "account a: accounts.balance expected 700, got 701 (folded from the log)"]
    data = json.loads(report.model_dump_json())
    assert data["ok"] is False and data["findings"][0]["expected"] == 700
    assert Report().ok


def test_report_output_has_a_line_per_finding_and_the_verdict():
    finding = Finding(account_id="a", field="events", expected=2, actual=0)
    data, text = output.check_report(Report(findings=[finding], workflows_busy=1))
    lines = [str(item) for item in text.renderables[1:]]
    assert lines[0] == "account a: events expected 2, got 0"
    assert "1 workflow(s) busy" in lines[1] and lines[-1] == "1 finding(s)"
    assert data["ok"] is False and data["findings"][0]["field"] == "events"
    assert [str(item) for item in output.check_report(Report())[1].renderables[1:]] == ["ok"]


def test_account_option_takes_several_ids_and_repeats():
    args, _ = cli.parse(["check", "--account", "a", "b", "--account", "c", "--json"])
    assert args.accounts == ["a", "b", "c"] and args.json and not args.no_workflows
    args, _ = cli.parse(["--json", "check", "--no-workflows"])
    assert args.accounts is None and args.json and args.no_workflows
