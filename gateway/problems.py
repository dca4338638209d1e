"""Errors as RFC 9457 problem details (``application/problem+json``), each with a stable type.

Every failure a client can cause or meet has a ``Kind``: its type URI, HTTP status and title.
``from_billing_error`` is the one place where the client's typed errors (``client.errors``)
become problems; ``install`` registers the handlers that write them, so FastAPI's own
validation errors and unknown routes answer in the same shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from client import (
    AccountExists,
    AccountNotFound,
    BillingError,
    CommandRefused,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidCommand,
    NamespaceNotFound,
    TemporalUnavailable,
)
from domain.account import CLOSED_REASON, HOLDS_BALANCE_PREFIX, NO_ACCOUNT_REASON, OTHER_CURRENCY_PREFIX
from workflows.interface import CommandOutcome

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:billing:problem:"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One kind of problem: ``type`` is what clients match on; it never changes."""

    slug: str
    status: int
    title: str

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.slug


INVALID_REQUEST = Kind("invalid-request", 422, "The request is not valid")
INSUFFICIENT_FUNDS = Kind("insufficient-funds", 402, "Insufficient funds")
ACCOUNT_NOT_FOUND = Kind("account-not-found", 404, "No such account")
INVOICE_NOT_FOUND = Kind("invoice-not-found", 404, "No such invoice")
ACCOUNT_EXISTS = Kind("account-exists", 409, "The account already exists")
ACCOUNT_CLOSED = Kind("account-closed", 409, "The account is closed")
ACCOUNT_HAS_BALANCE = Kind("account-has-balance", 409,
                           "The account holds a balance; close it with a payout")
CURRENCY_MISMATCH = Kind("currency-mismatch", 422, "The command is in another currency than the account")
COMMAND_REJECTED = Kind("command-rejected", 422, "The account rejected the command")
KEY_REUSED = Kind("idempotency-key-reused", 422, "The Idempotency-Key was used for another request")
TEMPORAL_UNAVAILABLE = Kind("temporal-unavailable", 503, "The accounts do not answer; try again")
DATABASE_UNAVAILABLE = Kind("database-unavailable", 503, "The event log cannot be read; try again")
INTERNAL_ERROR = Kind("internal-error", 500, "Internal error")
KINDS = (INVALID_REQUEST, INSUFFICIENT_FUNDS, ACCOUNT_NOT_FOUND, INVOICE_NOT_FOUND, ACCOUNT_EXISTS,
         ACCOUNT_CLOSED, ACCOUNT_HAS_BALANCE, CURRENCY_MISMATCH, COMMAND_REJECTED, KEY_REUSED,
         TEMPORAL_UNAVAILABLE, DATABASE_UNAVAILABLE, INTERNAL_ERROR)


class FieldError(BaseModel):
    """One problem with one part of the request: where (``loc``), and what."""

    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details, with this API's extension members where they apply."""

    type: str
    title: str
    status: int
    detail: str
    account_id: str | None = None
    command_id: str | None = None
    balance: int | None = None
    """For a declined charge, or a close refused for the balance: the account's balance."""
    version: int | None = None
    """The event that recorded the command (a decline or rejection is recorded too)."""
    errors: list[FieldError] | None = None


@dataclass
class ApiProblem(Exception):
    """Raise to answer with a problem; ``headers`` go on the response."""

    kind: Kind
    detail: str
    extensions: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def problem(self) -> Problem:
        return Problem(type=self.kind.type, title=self.kind.title, status=self.kind.status,
                       detail=self.detail, **self.extensions)


def rejection(reason: str) -> Kind:
    """The kind of a ``rejected`` outcome. The reason text is the only signal an outcome
    carries; the domain exports the reasons it gives (``domain.account``)."""
    if reason == CLOSED_REASON:
        return ACCOUNT_CLOSED
    if reason == NO_ACCOUNT_REASON:
        return ACCOUNT_NOT_FOUND
    if reason.startswith(OTHER_CURRENCY_PREFIX):
        return CURRENCY_MISMATCH
    if reason.startswith(HOLDS_BALANCE_PREFIX):
        return ACCOUNT_HAS_BALANCE
    return COMMAND_REJECTED


def refused(outcome: CommandOutcome, status: str, account_id: str) -> ApiProblem:
    """The problem for an outcome that was ``status`` (declined, rejected or refused)."""
    kind = {"declined": INSUFFICIENT_FUNDS, "refused": KEY_REUSED}.get(status) or rejection(outcome.reason)
    extensions = {"account_id": account_id, "command_id": outcome.command_id,
                  "version": outcome.version}
    if status == "declined" or kind is ACCOUNT_HAS_BALANCE:
        extensions["balance"] = outcome.balance
    return ApiProblem(kind, outcome.reason, extensions)


def from_billing_error(error: BillingError, account_id: str) -> ApiProblem:
    """The problem a client's typed error means. Anything unforeseen is an internal error:
    it is the service's fault, never the request's."""
    if isinstance(error, CommandRefused):
        status = ("declined" if isinstance(error, InsufficientFunds)
                  else "refused" if isinstance(error, IdempotencyKeyReused) else "rejected")
        return refused(error.outcome, status, account_id)
    simple = {InvalidCommand: INVALID_REQUEST, AccountNotFound: ACCOUNT_NOT_FOUND,
              AccountExists: ACCOUNT_EXISTS, TemporalUnavailable: TEMPORAL_UNAVAILABLE,
              NamespaceNotFound: TEMPORAL_UNAVAILABLE}  # misconfigured: unavailable until fixed
    kind = next((kind for cls, kind in simple.items() if isinstance(error, cls)), INTERNAL_ERROR)
    extensions: dict[str, Any] = {"account_id": account_id}
    if isinstance(error, TemporalUnavailable) and error.command_id is not None:
        extensions["command_id"] = error.command_id
    return ApiProblem(kind, str(error), extensions)


def respond(problem: ApiProblem, retry_after: int) -> JSONResponse:
    """The response for ``problem``; a 503 says when to try again."""
    headers = dict(problem.headers)
    if problem.kind.status == HTTPStatus.SERVICE_UNAVAILABLE:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(problem.problem().model_dump(mode="json", exclude_none=True),
                        status_code=problem.kind.status, headers=headers, media_type=PROBLEM_JSON)


def install(app: FastAPI, retry_after: int) -> None:
    """Answer every error of ``app`` as a problem: ours, FastAPI's validation, Starlette's
    404/405, and (logged) anything unexpected."""

    async def api_problem(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiProblem)
        return respond(error, retry_after)

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [FieldError(loc=list(e.get("loc", ())), msg=e.get("msg", "")) for e in error.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors)
        return respond(ApiProblem(INVALID_REQUEST, detail, {"errors": errors}), retry_after)

    async def http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        if error.status_code == HTTPStatus.BAD_REQUEST:  # a body that does not parse: invalid input
            return respond(ApiProblem(INVALID_REQUEST, str(error.detail)), retry_after)
        title = HTTPStatus(error.status_code).phrase
        body = {"type": "about:blank", "title": title, "status": error.status_code,
                "detail": str(error.detail)}
        return JSONResponse(body, status_code=error.status_code, headers=error.headers,
                            media_type=PROBLEM_JSON)

    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=error)
        return respond(ApiProblem(INTERNAL_ERROR, "the service failed; see its log"), retry_after)

    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def responses(*kinds: Kind) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that can answer these problems (``app.openapi``
    moves them to ``application/problem+json``)."""
    statuses = sorted({kind.status for kind in (INVALID_REQUEST, *kinds)})
    return {status: {"model": Problem, "description": ", ".join(
        kind.slug for kind in KINDS if kind.status == status and kind in (INVALID_REQUEST, *kinds))}
        for status in statuses}
