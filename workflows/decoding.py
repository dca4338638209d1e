"""What arrives at an account, decoded and parsed into domain commands; never raises.

Signals, updates and the start input arrive as raw payloads. ``decode_args`` decodes them with
the workflow's payload converter: a payload that does not decode becomes an ``Undecodable``
argument. ``parse_signal``, ``parse_update``, ``parse_command`` and ``parse_batch`` turn the
decoded arguments into commands, or into a ``RejectInput`` that says why they were refused, so
no input is ever lost and no input can fail the workflow. Text that comes from the sender
(field names, message names, previews) is escaped and shortened before it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.converter import PayloadConverter

from domain.commands import AddFunds, Charge, CloseAccount, Command, RefundCharge, RejectInput
from workflows.interface import (
    ADD_FUNDS,
    CHARGE,
    CLOSE,
    CLOSE_PERIOD,
    COMMAND_UPDATES,
    MAX_BATCH_COMMANDS,
    OPENED,
    POST_BATCH,
    REFUND,
    SIGNALS,
    BatchItem,
)

_COMMAND_MODELS: dict[str, type[BaseModel]] = {ADD_FUNDS: AddFunds, CHARGE: Charge, CLOSE: CloseAccount,
                                               REFUND: RefundCharge}
_INTERNAL_FIELDS = {"facts"}
"""Fields the workflow fills in itself: a sender that sets them is refused."""
_PREVIEW_CHARS = 1_000
_BATCH_ITEM: TypeAdapter[AddFunds | Charge] = TypeAdapter(BatchItem)


@dataclass(frozen=True)
class Undecodable:
    """An argument whose payload the payload converter could not decode (not valid JSON, or an
    encoding it does not know). The parsers refuse it like any other malformed argument."""

    reason: str
    preview: str
    """The start of the payload's bytes, as text."""


def decode_args(args: Sequence[RawValue], converter: PayloadConverter) -> list[Any]:
    """Decode raw arguments one by one with ``converter`` (the workflow's); never raises."""
    return [_decode(arg.payload, converter) for arg in args]


def _decode(payload: Payload, converter: PayloadConverter) -> Any:
    try:
        return converter.from_payload(payload)
    except Exception as error:  # noqa: BLE001 - any converter error: unknown encoding, bad JSON, ...
        encoding = _printable(payload.metadata.get("encoding", b"").decode("utf-8", "replace"), 64)
        return Undecodable(
            reason=_shorten(f"a {encoding or 'unlabelled'} payload that cannot be decoded: "
                            f"{_describe_decode_error(error)}", _PREVIEW_CHARS),
            preview=payload.data[:_PREVIEW_CHARS].decode("utf-8", "backslashreplace"),
        )


def _describe_decode_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    causes = [error] + ([error.__cause__] if error.__cause__ is not None else [])
    return _printable("; ".join(str(cause) for cause in causes), _PREVIEW_CHARS)


def parse_signal(name: str, args: Sequence[Any], signals: Sequence[str] = SIGNALS) -> list[Command]:
    """The commands of the signal ``name``: one, or a batch's; never raises. A name not in
    ``signals`` is refused like malformed input, so a mistyped signal is recorded instead of
    lost."""
    if name == POST_BATCH:
        return parse_batch(args)
    if name not in signals:
        return [_reject_unknown("signal", name, signals, args)]
    return [parse_command(name, args)]


def parse_update(name: str, args: Sequence[Any]) -> list[Command]:
    """The commands of the update ``name``, as ``parse_signal``; ``opened`` carries none."""
    if name not in COMMAND_UPDATES:
        return [_reject_unknown("update", name, sorted((*COMMAND_UPDATES, OPENED, CLOSE_PERIOD)), args)]
    return parse_batch(args) if name == POST_BATCH else [parse_command(name, args)]


def parse_command(kind: str, args: Sequence[Any]) -> Command:
    """Validate a signal's or update's arguments as the command ``kind``.

    Returns the command, or a ``RejectInput`` naming every problem; never raises.
    """
    if len(args) != 1:
        return _reject(kind, f"expected exactly one JSON object argument, got {len(args)}", args)
    payload = args[0]
    if isinstance(payload, Undecodable):
        return _reject(kind, f"expected a JSON object, got {payload.reason}", payload.preview)
    if not isinstance(payload, dict):
        return _reject(kind, f"expected a JSON object, got {type(payload).__name__}", payload)
    model = _COMMAND_MODELS.get(kind)
    if model is None:
        return _reject(kind, f"unknown command {kind!r}", payload)
    if internal := _INTERNAL_FIELDS & set(payload):
        return _reject(kind, f"{', '.join(sorted(internal))}: set by the account, not by the "
                             "sender", payload)
    try:
        return model.model_validate(payload)  # type: ignore[return-value]
    except ValidationError as error:
        return _reject(kind, describe_validation_error(error), payload)


def batch_size(batch: Any) -> int:
    """A ``post_batch`` argument's weight as UTF-8 JSON bytes."""
    return len(json.dumps(batch, ensure_ascii=False, separators=(",", ":"), default=repr).encode())


def parse_batch(args: Sequence[Any]) -> list[Command]:
    """Validate a ``post_batch`` message: ``{"commands": [{"kind": "add_funds"|"charge", ...}]}``.

    Each well-formed item becomes its command and each malformed one its own ``RejectInput``;
    a malformed envelope becomes a single ``RejectInput``. Never raises.
    """
    if len(args) != 1:
        return [_reject(POST_BATCH, f"expected exactly one JSON object argument, got {len(args)}", args)]
    payload = args[0]
    if isinstance(payload, Undecodable):
        return [_reject(POST_BATCH, f'expected {{"commands": [...]}}, got {payload.reason}',
                        payload.preview)]
    items = payload.get("commands") if isinstance(payload, dict) else None
    if not isinstance(items, list) or set(payload) != {"commands"}:
        return [_reject(POST_BATCH, 'expected {"commands": [...]} and no other field', payload)]
    if not 1 <= len(items) <= MAX_BATCH_COMMANDS:
        return [_reject(POST_BATCH, f"a batch holds 1 to {MAX_BATCH_COMMANDS} commands, got {len(items)}",
                        f"{len(items)} commands")]
    return [_parse_batch_item(index, item) for index, item in enumerate(items)]


def _parse_batch_item(index: int, item: Any) -> Command:
    try:
        return _BATCH_ITEM.validate_python(item)
    except ValidationError as error:
        kind = item.get("kind") if isinstance(item, dict) else None
        return _reject(kind if kind in (ADD_FUNDS, CHARGE) else POST_BATCH,
                       f"commands[{index}]: {describe_validation_error(error)}", item)


def describe_validation_error(error: ValidationError) -> str:
    """``field: message`` per problem, without echoing the (possibly huge) input.

    Field names come from the sender, so they are escaped (a NUL cannot be stored in Postgres)
    and shortened, and so is the whole text."""
    text = "; ".join(
        f"{'.'.join(_printable(part, 64) for part in problem['loc']) or 'input'}: {problem['msg']}"
        for problem in error.errors(include_url=False, include_input=False)
    )
    return _shorten(text, _PREVIEW_CHARS)


def _printable(part: object, limit: int) -> str:
    text = str(part)
    if not text.isprintable():
        text = json.dumps(text)[1:-1]  # escapes control characters as \uXXXX
    return _shorten(text, limit)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _reject_unknown(message: str, name: str, known: Sequence[str], args: Sequence[Any]) -> RejectInput:
    """The name comes from the sender: escaped and shortened, as field names are."""
    shown = _printable(name, 64)
    return _reject(shown, f"unknown {message} '{shown}'; known {message}s: {', '.join(known)}",
                   list(args))


def _reject(kind: str, reason: str, received: Any) -> RejectInput:
    return RejectInput(command=kind, reason=reason, received=_preview(received))


def _preview(value: Any) -> str:
    return _shorten(json.dumps(value, default=repr, sort_keys=True), _PREVIEW_CHARS)
