"""The CLI end to end: the real worker process, and ``python -m starter`` run as a user runs it.

One account's whole life (open, fund, an idempotent charge sent twice, a declined charge and its
repeat, a signal, balance, history, close, a charge refused after close), then SIGTERM to the
worker, which must stop cleanly; and the demo, checked against the event log and by `check`.
"""

from __future__ import annotations

import json
import subprocess

from tests.e2e.conftest import Cli, WorkerProcess

ACCOUNT = "e2e-acme"


def shown(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, shown(result)
    return result.stdout


def failed(result: subprocess.CompletedProcess, code: int) -> str:
    """Assert the exit code and the single ``error: ...`` line; return that line."""
    assert result.returncode == code, shown(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_an_account_from_open_to_close_then_the_worker_stops_on_sigterm(
        worker_process: WorkerProcess, cli: Cli) -> None:
    assert "opened account e2e-acme in USD" in ok(cli("open", ACCOUNT, "--currency", "USD"))
    assert "account e2e-acme already exists" in failed(cli("open", ACCOUNT, "--currency", "USD"), 5)
    assert "applied: fund 12.50 USD" in ok(cli("fund", ACCOUNT, "12.50", "--description", "top-up"))

    first = json.loads(ok(cli("charge", ACCOUNT, "2.25", "--idempotency-key", "inv-1", "--json")))
    again = json.loads(ok(cli("charge", ACCOUNT, "2.25", "--idempotency-key", "inv-1", "--json")))
    assert (first["status"], first["balance"], first["version"]) == ("applied", 1025, 3)
    assert (again["status"], again["balance"], again["version"]) == ("duplicate", 1025, 3)

    declined = cli("charge", ACCOUNT, "100.00", "--idempotency-key", "inv-2")
    assert "charge of 100.00 USD declined" in failed(declined, 3)
    assert "balance 10.25 USD" in declined.stderr and declined.stdout == ""
    repeat = ok(cli("charge", ACCOUNT, "100.00", "--idempotency-key", "inv-2"))
    assert "duplicate: idempotency key inv-2 was already recorded at version 4" in repeat
    assert "it was declined (insufficient funds" in repeat

    view = json.loads(ok(cli("balance", ACCOUNT, "--json")))
    expected = {"balance": 1025, "version": 4, "status": "open", "currency": "USD",
                "pending_commands": 0}
    assert {key: view[key] for key in expected} == expected
    assert "account nobody not found" in failed(cli("balance", "nobody"), 4)

    _check_history(cli)
    assert "sent: fund 0.75 USD" in ok(cli("fund", ACCOUNT, "0.75", "--no-wait"))
    # The close signal is applied after the fund signal sent before it.
    assert "close it with --payout" in failed(cli("close", ACCOUNT, "--reason", "e2e done"), 3)
    closed = ok(cli("close", ACCOUNT, "--reason", "e2e done", "--payout"))
    assert "paid out 11.00 USD; final balance 0.00 USD" in closed
    assert "account is closed" in failed(cli("charge", ACCOUNT, "1.00"), 3)
    assert json.loads(ok(cli("balance", ACCOUNT, "--json")))["status"] == "closed"

    assert worker_process.stop() == 0, worker_process.output()
    assert "stopped" in worker_process.output()


def _check_history(cli: Cli) -> None:
    table = ok(cli("history", ACCOUNT))
    kinds = ["ACCOUNT_CREATED", "FUND_ADDED", "CHARGE_APPLIED", "CHARGE_DECLINED"]
    positions = [table.index(kind) for kind in kinds]
    assert positions == sorted(positions) and "inv-1" in table and "top-up" in table
    events = json.loads(ok(cli("history", ACCOUNT, "--json")))["events"]
    assert [(e["version"], e["event_type"], e["amount"]) for e in events] == [
        (1, "ACCOUNT_CREATED", None), (2, "FUND_ADDED", 1250), (3, "CHARGE_APPLIED", 225),
        (4, "CHARGE_DECLINED", 10000)]
    assert events[2]["command_id"] == "inv-1"


def test_demo_settles_every_account_and_matches_the_event_log(worker_process: WorkerProcess,
                                                              cli: Cli) -> None:
    summary = json.loads(ok(cli("demo", "--accounts", "3", "--operations", "30", "--json")))
    accounts = summary["accounts"]
    assert len(accounts) == 3 and summary["operations"] == 30
    assert summary["awaited"] + summary["unawaited"] == 30 and summary["awaited"] == 3
    assert 3 <= summary["messages"] < 30  # concurrent calls to one account were coalesced
    assert all(a["version"] == 11 and a["pending_commands"] == 0 for a in accounts)
    assert sum(summary["event_counts"].values()) == 33
    assert summary["web_ui"].endswith("/namespaces/default/workflows")
    for account in accounts:
        events = json.loads(ok(cli("history", account["account_id"], "--json")))["events"]
        assert account["balance"] == _balance_from(events)
    report = json.loads(ok(cli("check", "--json")))
    assert report["ok"] and (report["accounts_checked"], report["workflows_checked"]) == (3, 3)
    assert ok(cli("check", "--no-workflows")).rstrip().endswith("ok")


def _balance_from(events: list[dict]) -> int:
    signs = {"FUND_ADDED": 1, "CHARGE_APPLIED": -1}
    return sum(signs.get(event["event_type"], 0) * (event["amount"] or 0) for event in events)
