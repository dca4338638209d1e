"""The CLI without servers: argument parsing, amounts and commands checked before anything is
sent, the exit codes and the one-line errors of ``cli.run``."""

from __future__ import annotations

import json
import random
import socket
import sys
import types
import uuid

import pytest

from client import (
    AccountExists,
    AccountNotFound,
    AccountNotRunning,
    BillingError,
    CommandRejectedError,
    InsufficientFunds,
    InvalidCommand,
    NamespaceNotFound,
    TemporalUnavailable,
    TemporalUnreachable,
)
from domain.commands import AddFunds, Charge, CloseAccount
from starter import cli, output
from starter.accounts import cli_error
from starter.demo import UPDATE_EVERY, plan
from starter.errors import CliError, ExitCode
from starter.inputs import check_command_fields, close_command, money_command, open_input, parse_amount
from starter.operations_grammar import PASS_THROUGH
from starter.output import money
from workflows.interface import ADD_FUNDS, CHARGE, AccountView, CommandOutcome, OpenOutcome


def parse(*argv: str):
    args, rest = cli.parse(list(argv))
    assert rest == []
    return args


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# --- parsing ------------------------------------------------------------------------------

def test_open_takes_currency_in_any_case_and_defaults_to_no_overdraft() -> None:
    args = parse("open", "acme", "--currency", "usd")
    assert (args.account_id, args.currency, args.overdraft_limit) == ("acme", "USD", "0")
    assert (args.json, args.timeout) == (False, cli.build_parser().get_default("timeout"))


def test_fund_and_charge_wait_by_default_and_have_no_key_until_one_is_made() -> None:
    args = parse("charge", "acme", "2.25")
    assert (args.amount, args.wait, args.idempotency_key, args.description) == ("2.25", True, None, "")
    args = parse("fund", "acme", "12.50", "--no-wait", "--idempotency-key", "k-1",
                 "--description", "x")
    assert (args.wait, args.idempotency_key, args.description) == (False, "k-1", "x")


@pytest.mark.parametrize("argv", [
    ["--json", "balance", "acme"], ["balance", "acme", "--json"],
    ["--json", "balance", "--json", "acme"],
])
def test_json_is_accepted_before_or_after_the_verb(argv: list[str]) -> None:
    assert parse(*argv).json is True


def test_an_option_given_before_the_verb_is_not_reset_by_the_verb() -> None:
    assert parse("--timeout", "5", "balance", "acme").timeout == 5.0
    assert parse("balance", "acme", "--timeout", "7").timeout == 7.0


def test_demo_defaults() -> None:
    args = parse("demo")
    assert (args.accounts, args.operations, args.currency, args.concurrency) == (5, 200, "USD", 128)
    assert args.ui_url == "http://localhost:8233"


@pytest.mark.parametrize("argv, message", [
    ([], "required: VERB"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["fund", "acme"], "required: AMOUNT"),
    (["open", "acme"], "required: --currency"),
    (["balance", "acme", "extra"], "unrecognized arguments: extra"),
    (["--timeout", "0", "balance", "acme"], "--timeout"),
    (["demo", "--accounts", "0"], "--accounts"),
    (["demo", "--operations", "-3"], "--operations"),
    (["check", "--account"], "--account"),
    (["check", "acme"], "unrecognized arguments: acme"),
])
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(argv) == ExitCode.USAGE
    assert message in one_error_line(capsys)


@pytest.mark.parametrize("verb", ["", "open", "fund", "charge", "balance", "history", "close",
                                  "demo", "check"])
def test_every_verb_has_help_with_examples(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run([verb, "--help"] if verb else ["--help"]) == 0
    assert "examples:\n  billing " in capsys.readouterr().out


def test_the_top_level_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["--help"]) == 0
    listed = capsys.readouterr().out
    verbs = {name.split()[0] for name in [*cli.VERBS, "up", *PASS_THROUGH]}
    assert all(f"    {verb} " in listed for verb in verbs), listed
    assert "billing check --no-workflows" in listed


def test_up_passes_everything_after_it_to_devstack(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []

    def main(argv: list[str]) -> int:
        received.append(argv)
        return 7

    import devstack

    fake = types.ModuleType("devstack.up")
    monkeypatch.setattr(fake, "main", main, raising=False)
    monkeypatch.setitem(sys.modules, "devstack.up", fake)
    monkeypatch.setattr(devstack, "up", fake, raising=False)  # if it was imported already
    assert cli.run(["up", "--no-demo", "--json", "--help"]) == 7
    assert received == [["--no-demo", "--json", "--help"]]


# --- amounts and commands -----------------------------------------------------------------

@pytest.mark.parametrize("text, currency, minor", [
    ("12.50", "USD", 1250), ("12.5", "USD", 1250), ("0.01", "USD", 1), ("12", "JPY", 12),
    ("1.005", "KWD", 1005), ("3.10", "USD", 310),
])
def test_amounts_become_minor_units_of_the_currency(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize("text, currency, message", [
    ("1.234", "USD", "allows 2 decimal(s)"), ("12.5", "JPY", "allows 0 decimal(s)"),
    ("-1", "USD", "plain positive decimal"), ("1e3", "USD", "plain positive decimal"),
    ("abc", "USD", "plain positive decimal"), ("0", "USD", "greater than zero"),
    ("1", "usd", "uppercase"), ("1", "XAU", "no minor unit"),
])
def test_bad_amounts_are_usage_errors(text: str, currency: str, message: str) -> None:
    with pytest.raises(CliError) as raised:
        parse_amount(text, currency)
    assert raised.value.code == ExitCode.USAGE and message in raised.value.message


def test_open_input_converts_the_overdraft_and_checks_the_account_id() -> None:
    start = open_input("acme", "USD", "10.00")
    assert (start.account_id, start.currency, start.overdraft_limit) == ("acme", "USD", 1000)
    assert open_input("acme", "USD", "0").overdraft_limit == 0
    with pytest.raises(CliError, match="account_id") as raised:
        open_input("bad/id", "USD", "0")
    assert raised.value.code == ExitCode.USAGE


def test_money_commands_carry_the_key_or_a_fresh_uuid() -> None:
    charge = money_command(CHARGE, "2.25", "USD", key="inv-1", description="May")
    assert isinstance(charge, Charge) and (charge.command_id, charge.amount) == ("inv-1", 225)
    fund = money_command(ADD_FUNDS, "1", "EUR", key=None, description="")
    assert isinstance(fund, AddFunds) and uuid.UUID(fund.command_id).version == 4


@pytest.mark.parametrize("key, description, message", [
    ("", "", "--idempotency-key"), ("k" * 129, "", "--idempotency-key"),
    ("k", "d" * 501, "description"),
])
def test_bad_keys_and_descriptions_are_refused_before_connecting(key: str, description: str,
                                                                 message: str) -> None:
    with pytest.raises(CliError, match=message) as raised:
        check_command_fields(CHARGE, key=key, description=description)
    assert raised.value.code == ExitCode.USAGE
    with pytest.raises(CliError, match="reason"):
        close_command(key=None, reason="r" * 501)


def test_money_is_formatted_with_the_currency_decimals() -> None:
    assert money(-1250, "USD") == "-12.50 USD"
    assert (money(5, "JPY"), money(1005, "KWD")) == ("5 JPY", "1.005 KWD")


# --- run: errors caught before or without a server -----------------------------------------

def test_bad_input_fails_before_connecting_and_json_mode_also_reports_it_on_stdout(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["--json", "open", "bad/id", "--currency", "USD"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.err.startswith("error: cannot open account: account_id")
    assert json.loads(captured.out)["exit_code"] == ExitCode.USAGE


def test_history_needs_database_url(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.run(["history", "acme"]) == ExitCode.USAGE
    assert "DATABASE_URL is not set" in one_error_line(capsys)


def test_check_needs_database_url(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.run(["check", "--no-workflows", "--json"]) == ExitCode.USAGE
    assert "DATABASE_URL is not set" in one_error_line(capsys)


def test_unreachable_temporal_names_the_address(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)
    assert cli.run(["balance", "acme", "--timeout", "10"]) == ExitCode.UNAVAILABLE
    assert f"cannot reach Temporal at TEMPORAL_ADDRESS={address}" in one_error_line(capsys)


# --- the demo's plan ----------------------------------------------------------------------

def test_demo_plan_spreads_operations_funds_each_account_first_and_mostly_signals() -> None:
    accounts = ["a", "b", "c"]
    operations = plan(accounts, 100, "USD", "t", random.Random(1))
    assert [op.account_id for op in operations[:6]] == accounts * 2
    assert all(isinstance(op.command, AddFunds) for op in operations[:3])
    assert {type(op.command) for op in operations} == {AddFunds, Charge}
    assert sum(op.wait for op in operations) == 100 // UPDATE_EVERY
    assert len({op.command.command_id for op in operations}) == 100
    assert all(100 <= op.command.amount <= 5000 for op in operations)


# --- the client's errors, in the CLI's words ------------------------------------------------

VIEW = AccountView(account_id="acme", currency="USD", balance=1025, version=4, status="open",
                   overdraft_limit=500)
CHARGE_100 = Charge(command_id="k-1", amount=10_000)


def outcome(status: str, reason: str) -> CommandOutcome:
    return CommandOutcome(command_id="k-1", status=status, reason=reason, balance=1025, version=5)


@pytest.mark.parametrize("error, code, words", [
    (TemporalUnreachable("127.0.0.1:1", "Connection refused"), ExitCode.UNAVAILABLE,
     "cannot reach Temporal at TEMPORAL_ADDRESS=127.0.0.1:1 (Connection refused)"),
    (TemporalUnavailable("account acme did not answer", command_id="k-1"), ExitCode.UNAVAILABLE,
     "repeat it with --idempotency-key k-1"),
    (InsufficientFunds(outcome("declined", "insufficient funds")), ExitCode.REFUSED,
     "charge of 100.00 USD declined for account acme: insufficient funds (balance 10.25 USD, "
     "overdraft limit 5.00 USD)"),
    (CommandRejectedError(outcome("rejected", "account is closed")), ExitCode.REFUSED,
     "charge rejected by account acme: account is closed"),
    (AccountNotFound("account acme not found"), ExitCode.NOT_FOUND, "account acme not found"),
    (AccountExists("account acme already exists"), ExitCode.EXISTS, "already exists"),
    (InvalidCommand("amount: too big"), ExitCode.USAGE, "invalid charge: amount: too big"),
    (NamespaceNotFound("Temporal namespace 'x' not found"), ExitCode.USAGE, "(TEMPORAL_NAMESPACE)"),
    (AccountNotRunning("acme", "TERMINATED"), ExitCode.FAILURE, "not running (TERMINATED)"),
    (BillingError("account acme: Temporal refused the call"), ExitCode.FAILURE, "refused the call"),
])
def test_every_client_error_has_its_exit_code(error: BillingError, code: ExitCode,
                                              words: str) -> None:
    mapped = cli_error(error, VIEW, CHARGE_100)
    assert mapped.code == code and words in mapped.message


def test_refusals_and_restarted_accounts_carry_their_details() -> None:
    refused = cli_error(CommandRejectedError(outcome("rejected", "account is closed")), VIEW,
                        CloseAccount(command_id="c"))
    assert refused.details["outcome"]["status"] == "rejected"
    restarted = cli_error(AccountExists("account acme already exists: ...",
                                        OpenOutcome(created=False, account=VIEW)))
    assert restarted.details["account"]["version"] == 4
    assert cli_error(TemporalUnavailable("no answer")).details == {"command_id": None}


def test_a_duplicate_says_where_its_key_was_recorded_not_that_it_was_applied() -> None:
    repeat = CommandOutcome(command_id="k-1", status="duplicate", balance=1025, version=3)
    data, text = output.applied(VIEW, CHARGE_100, repeat)
    assert data["status"] == "duplicate" and data["version"] == 3
    assert "k-1 was already recorded at version 3;" in text and "nothing changed" in text
    assert "billing history acme" in text and "applied" not in text


def test_a_duplicate_says_what_the_first_command_came_to_when_known() -> None:
    repeat = CommandOutcome(command_id="k-1", status="duplicate", balance=1025, version=3,
                            original_status="declined", reason="insufficient funds: ...")
    data, text = output.applied(VIEW, CHARGE_100, repeat)
    assert data["original_status"] == "declined"
    assert "it was declined (insufficient funds: ...)" in text and "billing history" not in text
