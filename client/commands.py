"""Commands made on the caller's side: validated with the domain's own models before anything
is sent, each under the caller's idempotency key or a fresh one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from client.errors import InvalidCommand
from workflows.decoding import describe_validation_error

M = TypeVar("M", bound=BaseModel)


def new_command_id() -> str:
    """A fresh idempotency key, for a command the caller did not name."""
    return str(uuid.uuid4())


def or_new(command_id: str | None) -> str:
    """The caller's key, or a fresh one if none was given. An empty key is the caller's, and
    invalid: replacing it would apply a retry under that key twice."""
    return new_command_id() if command_id is None else command_id


def validated(build: Callable[..., M], **fields: Any) -> M:
    """``build(**fields)``, a domain model; ``InvalidCommand`` with every problem if it refuses."""
    try:
        return build(**fields)
    except ValidationError as error:
        raise InvalidCommand(describe_validation_error(error)) from None
