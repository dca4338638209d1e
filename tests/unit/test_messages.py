"""The workflow's message boundary: ``decode_args``, the parsers and the input/outcome models."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.account import decide
from domain.commands import AddFunds, Charge, CloseAccount, RejectInput
from domain.state import AccountState
from workflows.decoding import Undecodable, decode_args, parse_command, parse_signal, parse_update
from workflows.interface import (
    ADD_FUNDS,
    CHARGE,
    CLOSE,
    POST_BATCH,
    AccountView,
    AccountWorkflowInput,
    workflow_id,
)

CONVERTER = pydantic_data_converter.payload_converter  # the worker's


def raw(data: bytes, encoding: bytes = b"json/plain") -> RawValue:
    return RawValue(Payload(metadata={"encoding": encoding}, data=data))


@pytest.mark.parametrize("kind, model_cls", [(ADD_FUNDS, AddFunds), (CHARGE, Charge)])
def test_well_formed_money_commands_parse(kind, model_cls):
    command = parse_command(kind, [{"command_id": "c1", "amount": 250, "description": "d"}])
    assert command == model_cls(command_id="c1", amount=250, description="d")


def test_close_parses():
    assert parse_command(CLOSE, [{"command_id": "x", "reason": "done"}]) == CloseAccount(
        command_id="x", reason="done")


@pytest.mark.parametrize("args", [[], [{"command_id": "c", "amount": 5}] * 2,
                                  [{"command_id": "c", "amount": 5}, "extra", 3]],
                         ids=["zero", "two", "three"])
def test_wrong_argument_counts_are_rejected(args):
    command = parse_command(CHARGE, args)

    assert isinstance(command, RejectInput)
    assert command.command == CHARGE
    assert command.reason == f"expected exactly one JSON object argument, got {len(args)}"
    assert command.received == json.dumps(list(args), sort_keys=True)


@pytest.mark.parametrize("payload, type_name", [
    (5, "int"), ("charge 5", "str"), (None, "NoneType"), ([1, 2], "list"), (True, "bool"),
    (1.5, "float"),
], ids=repr)
def test_non_objects_are_rejected(payload, type_name):
    command = parse_command(ADD_FUNDS, [payload])

    assert isinstance(command, RejectInput)
    assert command.reason == f"expected a JSON object, got {type_name}"
    assert command.received == json.dumps(payload)


@pytest.mark.parametrize("payload, field", [
    ({"command_id": "c", "amount": -1}, "amount"),
    ({"command_id": "c", "amount": 0}, "amount"),
    ({"command_id": "c", "amount": 1.0}, "amount"),
    ({"command_id": "c", "amount": "10"}, "amount"),
    ({"command_id": "c", "amount": True}, "amount"),
    ({"command_id": "c"}, "amount"),
    ({"amount": 5}, "command_id"),
    ({"command_id": "", "amount": 5}, "command_id"),
    ({"command_id": "x" * 129, "amount": 5}, "command_id"),
    ({"command_id": "c", "amount": 5, "colour": "red"}, "colour"),
    ({"command_id": "c", "amount": 5, "description": "d" * 501}, "description"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_reason_names_the_field(payload, field):
    command = parse_command(CHARGE, [payload])

    assert isinstance(command, RejectInput)
    assert command.reason.startswith(f"{field}: ")
    assert command.received == json.dumps(payload, sort_keys=True)


def test_every_problem_is_named():
    command = parse_command(ADD_FUNDS, [{"amount": -1, "colour": "red"}])
    assert isinstance(command, RejectInput)
    problems = command.reason.split("; ")
    assert sorted(problem.split(":")[0] for problem in problems) == ["amount", "colour", "command_id"]


def test_reason_does_not_echo_the_input():
    command = parse_command(CHARGE, [{"command_id": "c", "amount": "SECRET-4111-1111"}])
    assert isinstance(command, RejectInput)
    assert "SECRET" not in command.reason


def test_received_preview_is_truncated():
    payload = {"command_id": "c", "amount": -1, "description": "x" * 5_000}
    command = parse_command(CHARGE, [payload])

    assert isinstance(command, RejectInput)
    assert command.received == json.dumps(payload, sort_keys=True)[:1_000] + "…"


def test_received_preview_of_exactly_1000_chars_is_kept_whole():
    payload = {"amount": -1, "command_id": "c", "description": ""}
    payload["description"] = "x" * (1_000 - len(json.dumps(payload, sort_keys=True)))
    command = parse_command(CHARGE, [payload])
    assert command.received == json.dumps(payload, sort_keys=True)
    assert len(command.received) == 1_000


def test_a_malformed_command_never_carries_its_command_id():
    command = parse_command(CHARGE, [{"command_id": "c1", "amount": -5}])

    assert isinstance(command, RejectInput)
    assert not hasattr(command, "command_id")
    [event] = decide(AccountState(account_id="a"), command)
    assert event.command_id is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children,
                                                                       max_size=4),
    max_leaves=10,
)
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"command_id": st.text(max_size=130),
                           "amount": st.one_of(st.integers(), st.floats(), st.booleans())},
                          optional={"description": st.text(max_size=10), "x": json_values}),
)


@given(kind=st.sampled_from([ADD_FUNDS, CHARGE, CLOSE]), args=st.lists(payloads, max_size=3))
def test_parse_command_never_raises(kind, args):
    command = parse_command(kind, args)
    assert command.kind in (kind, "reject")
    if isinstance(command, RejectInput):
        assert command.command == kind and command.reason
        assert len(command.received) <= 1_001


def test_workflow_id():
    assert workflow_id("acc-1") == "account-acc-1"


def test_workflow_input_defaults_and_open_command():
    start = AccountWorkflowInput(account_id="a", currency="JPY", overdraft_limit=7)
    assert (start.history_budget, start.max_batch, start.local_activities, start.snapshot) == (
        10_000, 1_000, True, None)
    open_command = start.open_command()
    assert (open_command.account_id, open_command.currency, open_command.overdraft_limit) == (
        "a", "JPY", 7)


@pytest.mark.parametrize("options", [{"history_budget": 9}, {"max_batch": 0},
                                     {"max_batch": 2_001}, {"colour": "red"}], ids=repr)
def test_workflow_input_bounds(options):
    with pytest.raises(ValidationError):
        AccountWorkflowInput(account_id="a", currency="USD", **options)


@pytest.mark.parametrize("options", [{"account_id": "bad id", "currency": "USD"},
                                     {"account_id": "a", "currency": "usd"},
                                     {"account_id": "a", "currency": "USD", "overdraft_limit": -1}],
                         ids=repr)
def test_open_command_validates_the_start_input(options):
    with pytest.raises(ValidationError):
        AccountWorkflowInput(**options).open_command()


def test_account_view_of_state():
    state = AccountState(account_id="a", currency="KWD", overdraft_limit=5, balance=-3, version=9,
                         recent_commands={"c": 9})
    view = AccountView.of(state, pending=4)
    assert view.model_dump() == {"account_id": "a", "currency": "KWD", "balance": -3, "version": 9,
                                 "status": "open", "overdraft_limit": 5, "pending_commands": 4}


def test_reason_never_contains_control_characters():
    command = parse_command(ADD_FUNDS, [{"command_id": "c", "amount": 5, "x\x00\x1b": 1}])
    assert isinstance(command, RejectInput)
    assert not any(ord(ch) < 0x20 for ch in command.reason), command.reason


def test_received_preview_is_plain_ascii_json_even_for_control_characters():
    command = parse_command(ADD_FUNDS, [{"command_id": "a\x00b", "amount": 5}])
    assert isinstance(command, RejectInput)
    assert command.received.isascii() and "\x00" not in command.received
    assert json.loads(command.received) == {"command_id": "a\x00b", "amount": 5}


# --- raw payloads: decoded once, and refused when they do not decode -----------------------------

def test_decode_args_decodes_json_payloads():
    assert decode_args([raw(b'{"command_id":"c","amount":5}'), raw(b"", b"binary/null")],
                       CONVERTER) == [{"command_id": "c", "amount": 5}, None]


@pytest.mark.parametrize("payload", [
    raw(b'{"command_id": "c", "amount": '), raw(b'{"command_id": "\\ud800", "amount": 5}'),
    raw(b"\xff\xfe"), raw(b"\x00", b"binary/null"), raw(b"\x08\x01", b"binary/protobuf"),
    raw(b"{}", b"application/x-unknown"), raw(b"{}", b"bad\x00\xffencoding"),
    RawValue(Payload(data=b"{}")),
], ids=["truncated", "lone-surrogate", "not-utf8", "binary-null-bytes", "protobuf", "unknown",
        "control-bytes-in-encoding", "no-encoding"])
def test_a_payload_that_does_not_decode_is_refused_by_every_parser(payload):
    [value] = decode_args([payload], CONVERTER)
    assert isinstance(value, Undecodable)

    for name in (ADD_FUNDS, CHARGE, CLOSE, POST_BATCH):
        [command] = parse_signal(name, [value])
        assert isinstance(command, RejectInput) and command.command == name
        assert "cannot be decoded" in command.reason
        assert command.reason.isprintable() and command.received.isascii(), command
    for name in (ADD_FUNDS, CHARGE, POST_BATCH):
        assert parse_update(name, [value]) == parse_signal(name, [value])


def test_an_unknown_signal_is_refused_naming_it_without_using_its_command_id():
    [command] = parse_signal("transfer", [{"command_id": "r-1", "amount": 5}])

    assert isinstance(command, RejectInput)
    assert command.command == "transfer"
    assert command.reason == ("unknown signal 'transfer'; "
                              "known signals: add_funds, charge, close, post_batch, refund")
    [event] = decide(AccountState(account_id="a"), command)
    assert event.command_id is None


def test_an_unknown_update_is_refused_naming_the_known_ones():
    [command] = parse_update("transfer", [{"command_id": "x"}])
    assert isinstance(command, RejectInput)
    assert command.reason == ("unknown update 'transfer'; known updates: "
                              "add_funds, charge, close, close_period, opened, post_batch, refund")


def test_a_name_from_the_sender_is_escaped_and_shortened():
    [command] = parse_signal("a\x00" + "b" * 100, [])
    assert isinstance(command, RejectInput)
    assert "\x00" not in command.command and len(command.command) <= 65


@given(data=st.binary(max_size=40), encoding=st.sampled_from(
    [b"json/plain", b"binary/null", b"binary/plain", b"json/protobuf", b"binary/protobuf", b"x/y"]),
    name=st.sampled_from([ADD_FUNDS, CHARGE, CLOSE, POST_BATCH, "transfer"]))
def test_any_payload_decodes_or_is_refused_and_nothing_raises(data, encoding, name):
    values = decode_args([raw(data, encoding)], CONVERTER)
    for command in parse_signal(name, values) + parse_update(name, values):
        assert command.kind in (name, "reject")
